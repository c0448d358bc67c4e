"""What the in-process dashboard tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Api


@pytest.fixture
def browser(api: Api) -> Iterator[TestClient]:
    """The app over https (the sign-in cookie is Secure), following no redirects, signed in as
    nobody yet."""
    with TestClient(api.client.app, base_url="https://testserver", follow_redirects=False) as client:
        yield client
