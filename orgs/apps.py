"""The orgs app. It listens to no signal: joining through an invitation always takes the invitee's
click on Accept (orgs.views.invitation_link), never a login or signup by itself."""

from __future__ import annotations

from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organizations"
