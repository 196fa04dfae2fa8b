"""The operators' console inside the Django admin: the overview that replaces the admin's
index, "back up now", the restore wizard and live progress (README "The operators' console").

It sits in the project's top layer (like ``backupplatform.admin``): it reads every app and
writes only through their services."""
