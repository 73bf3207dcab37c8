"""Domain logic of accounts/: views, the API, admin actions and commands call these modules.

* users: who may create, change, disable, unlock and delete which user
* roles: role editing (fields and permissions), system roles protected, audited
* permissions: permission sync, system roles, role and instance grants
* cache: generations of the cached resolved permissions
* auth: password logins, lockout, throttling, login history
* sessions: API tokens and browser sessions on `user_sessions`
* otp: two-factor devices, enrollment, backup codes, sudo mode
"""
