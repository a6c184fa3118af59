"""Every API the fake answers, by path; one module per API family."""

from tests.support.fake_wecom.api import (
    contacts,
    groups,
    mass,
    message,
    tags,
    token,
    users,
    welcome,
)
from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route

ROUTES: dict[str, Route] = {
    route.path: route
    for family in (token, contacts, groups, users, tags, message, welcome, mass)
    for route in family.ROUTES
}

__all__ = ["ROUTES", "ApiFailure", "ApiRequest", "Route"]
