"""Fixtures of the privacy tests: a fixed project key and a synthetic patient."""

from __future__ import annotations

import datetime as dt

import pytest

from medlens.privacy.policy import DeidPolicy
from medlens.testing.phi import PHI


@pytest.fixture
def policy() -> DeidPolicy:
    return DeidPolicy(project_key=b"test-key")


@pytest.fixture
def phi() -> PHI:
    return PHI(
        given="Margaret",
        family="Okonkwo",
        patient_id="48213377",
        birth_date=dt.date(1931, 2, 14),
        study_date=dt.date(2021, 6, 3),
        accession="KX4410923",
        ssn="123-45-6789",
        phone="(617) 555-0134",
        email="m.okonkwo@example.org",
        street="42 Larkspur Avenue",
        city="Springfield",
        zip_code="62704",
        physician="Henrik Vestergaard",
        institution="Northfield General Hospital",
        age=93,
    )
