"""Build the Managed Service for Apache Flink package (PyFlink) and the Lambda zips.

    python -m deploy.packaging build --out build/adops-flink.zip [--fetch-jars]
    python -m deploy.packaging lambdas --out build/lambda
"""
