"""Swagger UI at / and bilingual (English + Chinese) documentation of every endpoint and parameter."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import RunningApp

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{3,}")


def _bilingual(text: str | None) -> bool:
    return bool(text and CJK.search(text) and LATIN.search(text))


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


async def test_swagger_ui_is_served_at_root(api: RunningApp) -> None:
    response = await api.client.get("/")
    assert response.status_code == 200
    assert "swagger-ui" in response.text.lower()


async def test_every_endpoint_and_parameter_is_bilingual(api: RunningApp) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    problems: list[str] = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            if not _bilingual(operation.get("summary", "") + " " + operation.get("description", "")):
                problems.append(f"{where}: summary/description")
            for parameter in operation.get("parameters", []):
                if not _bilingual(parameter.get("description")):
                    problems.append(f"{where}: parameter {parameter['name']}")
            body = operation.get("requestBody", {}).get("content", {})
            for content in body.values():
                schema = _resolve(spec, content["schema"])
                properties: dict[str, Any] = dict(schema.get("properties", {}))
                for part in schema.get("allOf", []):
                    properties.update(_resolve(spec, part).get("properties", {}))
                for name, prop in properties.items():
                    if not _bilingual(prop.get("description")):
                        problems.append(f"{where}: field {name}")
    assert problems == []
    create = spec["paths"]["/api/v1/tasks"]["post"]
    assert "multipart/form-data" in create["requestBody"]["content"]
