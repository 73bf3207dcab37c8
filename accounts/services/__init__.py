"""Domain logic of accounts/: views, the API, admin actions and commands call these modules.

* permissions: permission sync, system roles, role and instance grants
* auth: password logins, lockout, throttling, login history
* sessions: API tokens and browser sessions on `user_sessions`
* otp: two-factor devices, enrollment, backup codes, sudo mode
"""
