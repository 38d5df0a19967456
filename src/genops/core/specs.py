"""Configuration sections every workload shares: where a blessed champion is deployed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KServeSpec(_Strict):
    """The KServe InferenceService the deploy step renders and applies on the cluster."""

    namespace: str = "genops-serving"
    service_account: str = "genops-model-server"
    gpu: bool = False
    canary_traffic_percent: int | None = Field(None, ge=0, le=100)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    cpu: str = "1"
    memory: str = "2Gi"


class DeploySpec(_Strict):
    """Where a blessed champion goes. The pipeline code is the same for every target."""

    target: Literal["none", "local", "kserve"] = Field(
        "local",
        description="none: promote only; local: a REST server on 127.0.0.1 (detached, "
        "`make serve-stop` ends it); kserve: an InferenceService on the cluster.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, gt=0, lt=65536)
    max_rows: int = Field(10_000, gt=0, description="Largest num_rows a request may ask for.")
    smoke_rows: int = Field(20, gt=0)
    kserve: KServeSpec = Field(default_factory=lambda: KServeSpec())
