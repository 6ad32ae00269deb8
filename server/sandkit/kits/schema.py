"""A JSON Schema of the kit format, generated from the spec models (for YAML tools)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from sandkit.kits.spec_v1 import KitV1
from sandkit.kits.spec_v2 import KitV2
from sandkit.kits.spec_v3 import KitV3

SCHEMA_ID = "https://sandkit.invalid/schemas/kit.schema.json"

KitDocument = Annotated[KitV1 | KitV2 | KitV3, Field(discriminator="schemaVersion")]


def kit_json_schema() -> dict[str, Any]:
    schema = TypeAdapter(KitDocument).json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "sandkit / sbx kit spec (schemaVersion 1, 2 or 3)",
        **schema,
    }
