"""Every API the fake answers, by path; one module per API family."""

from tests.support.fake_wecom.api import (
    contacts,
    departments,
    groups,
    mass,
    message,
    tags,
    token,
    transfer,
    users,
    welcome,
)
from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route

ROUTES: dict[str, Route] = {
    route.path: route
    for family in (
        token,
        contacts,
        departments,
        groups,
        users,
        tags,
        message,
        welcome,
        mass,
        transfer,
    )
    for route in family.ROUTES
}

__all__ = ["ROUTES", "ApiFailure", "ApiRequest", "Route"]
