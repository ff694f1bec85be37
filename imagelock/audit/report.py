"""An audit as documents: imagelock's JSON report and SARIF 2.1.0 for code-scanning dashboards."""

from __future__ import annotations

import re
from typing import Any

from imagelock import __version__
from imagelock.audit.scan import AuditReport, Finding, ImageAudit

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "unknown": "note"}
_SECURITY_SEVERITY = {"critical": "9.0", "high": "7.0", "medium": "4.0", "low": "0.1"}


def advisory_url(identifier: str) -> str:
    return f"https://osv.dev/vulnerability/{identifier}"


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "platform": finding.platform,
        "package": finding.package,
        "version": finding.version,
        "ecosystem": finding.ecosystem,
        "fixed": finding.fixed or None,
        "id": finding.id,
        "aliases": list(finding.aliases),
        "severity": finding.severity,
        "score": finding.score or None,
        "summary": finding.summary,
        "location": finding.location,
        "ignored": finding.ignored,
    }


def image_json(image: ImageAudit) -> dict[str, Any]:
    target = image.target
    return {
        "name": target.name,
        "reference": target.reference,
        "fail-on": target.policy.fail_on,
        "ok": not image.failing and all(platform.error is None for platform in image.platforms),
        "platforms": [
            {
                "platform": platform.platform,
                "digest": platform.digest,
                "source": platform.source,
                "release": platform.release or None,
                "packages": platform.packages,
                "notes": list(platform.notes),
                "error": platform.error,
            }
            for platform in image.platforms
        ],
        "findings": [finding_json(finding) for finding in image.findings],
    }


def report_json(report: AuditReport) -> dict[str, Any]:
    return {
        "ok": not report.failed and not report.errors,
        "errors": list(report.errors),
        "images": [image_json(image) for image in report.images],
    }


def report_sarif(report: AuditReport, lock_uri: str, lock_text: str) -> dict[str, Any]:
    """SARIF 2.1.0: one rule per advisory, one result per finding, located at the image's entry in the lock."""
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for image in report.images:
        line = _entry_line(lock_text, image.target.name)
        for finding in image.findings:
            rules.setdefault(finding.id, _rule(finding))
            result: dict[str, Any] = {
                "ruleId": finding.id,
                "level": _SARIF_LEVELS[finding.severity],
                "message": {"text": _message(image, finding)},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": lock_uri},
                            "region": {"startLine": line},
                        },
                        "logicalLocations": [
                            {"name": image.target.name, "fullyQualifiedName": image.target.reference, "kind": "image"}
                        ],
                    }
                ],
                "partialFingerprints": {
                    "imagelock/v1": f"{image.target.name}:{finding.platform}:{finding.package}:{finding.id}"
                },
            }
            if finding.ignored:
                result["suppressions"] = [{"kind": "external", "justification": "ignored by the audit policy"}]
            results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "imagelock",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/imagelock/",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }


def _rule(finding: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": finding.id,
        "shortDescription": {"text": finding.summary or f"{finding.id} in {finding.package}"},
        "helpUri": advisory_url(finding.id),
        "properties": {"tags": ["security", "vulnerability"]},
    }
    if finding.severity in _SECURITY_SEVERITY:
        rule["properties"]["security-severity"] = _SECURITY_SEVERITY[finding.severity]
    if finding.aliases:
        rule["properties"]["aliases"] = list(finding.aliases)
    return rule


def _message(image: ImageAudit, finding: Finding) -> str:
    fixed = f"; fixed in {finding.fixed}" if finding.fixed else "; no fix known"
    return (
        f"{image.target.reference} ({finding.platform}): {finding.package} {finding.version} is affected by "
        f"{finding.id} ({finding.severity}){fixed}"
    )


def _entry_line(lock_text: str, name: str) -> int:
    """The line of ``[images.NAME]`` in the lock (1 when it cannot be found)."""
    pattern = re.compile(r'^\[images\.(?:"?)' + re.escape(name) + r'(?:"?)\]\s*$')
    for number, line in enumerate(lock_text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return 1
