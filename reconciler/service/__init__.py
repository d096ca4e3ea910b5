"""Services: the operations people ask for (deploy, backup, restore, clone, rollback, promote).

Each is one function (or method) that a CLI command or an API route calls.
"""
