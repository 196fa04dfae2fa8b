from __future__ import annotations

from django.urls import path

from . import storage, views

urlpatterns = [
    path("api-keys", views.ApiKeyViewSet.as_view({"get": "list", "post": "create"}), name="apikey-list"),
    path("api-keys/<str:pk>", views.ApiKeyViewSet.as_view({"delete": "destroy"}), name="apikey-detail"),
    path("storage/providers", storage.StorageProviderViewSet.as_view({"get": "list"}), name="storage-provider-list"),
    path("storage/providers/<str:pk>", storage.StorageProviderViewSet.as_view({"get": "retrieve"}),
         name="storage-provider-detail"),
    path("storage/test", storage.StorageTestView.as_view(), name="storage-test"),
    path("storage/<str:pk>/space", storage.StorageSpaceView.as_view(), name="storage-space"),
    path("storage/<str:pk>/backups", storage.StorageBackupsView.as_view({"get": "list"}), name="storage-backups"),
]
