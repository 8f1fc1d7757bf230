"""The embedded local AWS endpoint: moto's server plus the few patches this project needs.

See DESIGN.md ("Local AWS endpoint"). Public API:

    from deploy.local.endpoint import start_endpoint   # -> LocalEndpoint(url, port, pid, stop())
    from deploy.local.stack import deploy_core_stack    # (endpoint_url, parameters) -> outputs dict
"""
