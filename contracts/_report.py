"""Reporting verification results: a readable table, and JUnit XML for CI systems."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ._kit import Result


def table(participant: str, base_url: str, results: list[Result]) -> str:
    width = max((len(r.case.name) for r in results), default=4)
    lines = [f"contract v1 · {participant} · {base_url}", ""]
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        lines.append(f"  {mark}  {result.case.name:<{width}}  {result.case.description}")
        for reason in result.reasons:
            lines.append(f"        {'':<{width}}  - {reason}")
    failed = sum(not r.passed for r in results)
    lines += ["", f"{len(results) - failed} passed, {failed} failed"]
    return "\n".join(lines)


def junit_xml(participant: str, results: list[Result], path: Path) -> None:
    suite = ET.Element(
        "testsuite",
        name=f"contract.{participant}",
        tests=str(len(results)),
        failures=str(sum(not r.passed for r in results)),
        errors="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"contract.{participant}",
            name=result.case.name,
            time=f"{result.seconds:.3f}",
        )
        # What the case checks and where, so a CI page explains a failure by itself.
        properties = ET.SubElement(case, "properties")
        ET.SubElement(properties, "property", name="description", value=result.case.description)
        ET.SubElement(properties, "property", name="url", value=result.url)
        ET.SubElement(properties, "property", name="workflow_id", value=result.workflow_id)
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.reasons[0])
            failure.text = "\n".join(result.reasons)
        system_out = ET.SubElement(case, "system-out")
        system_out.text = f"{result.case.description}\nGET {result.url}"
    root = ET.Element("testsuites")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
