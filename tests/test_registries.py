"""Methods, domains, assets and metrics are registered through functions that refuse duplicates and bad names."""

import dataclasses

import pytest

from e4e_bench.assets import ASSETS, register_asset
from e4e_bench.domains import DOMAINS, IDENTITY_METRICS, register_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import METHODS, MethodEntry, register_method
from e4e_bench.metrics import METRICS
from tests.conftest import TINY


@pytest.mark.parametrize(("register", "existing"), [
    (lambda: register_method(MethodEntry("e4e", "x:y", "x:z", "a clash")), "method 'e4e'"),
    (lambda: register_domain(dataclasses.replace(TINY, name="cars")), "domain 'cars'"),
    (lambda: register_asset(dataclasses.replace(ASSETS["lpips-alex"])), "asset 'lpips-alex'"),
])
def test_a_duplicate_is_refused_and_the_entry_kept(register, existing):
    before = [dict(registry) for registry in (METHODS, DOMAINS, ASSETS)]
    with pytest.raises(ValueError, match=f"{existing} is registered twice"):
        register()
    assert [dict(registry) for registry in (METHODS, DOMAINS, ASSETS)] == before


@pytest.mark.parametrize("name", ["Cars", "my-method", "", "9lives"])
def test_malformed_method_names_are_refused(name):
    with pytest.raises(ValueError, match="must match"):
        register_method(MethodEntry(name, "x:y", "x:z", "a bad name"))


def test_registered_lasts_for_the_with_block_and_lookup_names_the_choices():
    with DOMAINS.registered("tiny_twin", dataclasses.replace(TINY, name="tiny_twin")):
        assert DOMAINS.lookup("tiny_twin").resolution == TINY.resolution
    assert "tiny_twin" not in DOMAINS
    with pytest.raises(E4EBenchError, match="unknown domain 'tiny_twin'; choose one of: faces, cars"):
        DOMAINS.lookup("tiny_twin")


def test_registries_are_read_only_mappings():
    with pytest.raises(TypeError):
        METHODS["e4e"] = MethodEntry("e4e", "x:y", "x:z", "")  # type: ignore[index]


def test_a_domain_identity_is_a_registered_metric_checked_when_the_domain_is_defined():
    assert all(domain.identity_metric in METRICS for domain in DOMAINS.values() if domain.identity is not None)
    assert set(IDENTITY_METRICS.values()) <= set(METRICS)
    with pytest.raises(ValueError, match="identity 'facenet' is not one of arcface, moco"):
        dataclasses.replace(TINY, identity="facenet")
