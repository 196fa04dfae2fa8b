from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("api-keys", views.ApiKeyViewSet.as_view({"get": "list", "post": "create"}), name="apikey-list"),
    path("api-keys/<str:pk>", views.ApiKeyViewSet.as_view({"delete": "destroy"}), name="apikey-detail"),
]
