"""The HTML run report (matplotlib PNGs embedded) written by `make run`.

    from flink_jobs.report import write_report
    write_report(report, archive_dir, labels_path, "reports/run/report.html")
"""
from .html import write_report

__all__ = ["write_report"]
