from __future__ import annotations

from django.urls import path

from . import views

urlpatterns: list = [
    path("config", views.ConfigView.as_view(), name="acronis-config"),
    path("agents", views.AgentsView.as_view(), name="acronis-agents"),
    path("workloads", views.WorkloadsView.as_view(), name="acronis-workloads"),
    path("associations", views.AssociationsView.as_view(), name="acronis-associations"),
    path("backups", views.BackupsView.as_view(), name="acronis-backups"),
    path("agent/<str:agent_id>/backups", views.AgentBackupsView.as_view(), name="acronis-agent-backups"),
    path("health", views.HealthView.as_view(), name="acronis-health"),
]
