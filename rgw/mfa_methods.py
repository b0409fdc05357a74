"""The MFA methods the CLI answers, named once: ``--mfa-method``'s choices and the MFA dialog's.

A module of its own that imports nothing, because the command line's options (on the start-up path
of every command, ``--help`` included) need the list and the MFA dialog (``rgw.login.mfa``) is too
heavy to import there.
"""

#: ``--mfa-method`` values; backup codes travel as ``method: "totp"`` (PROTOCOL.md).
MFA_METHODS = ("totp", "webauthn", "backup_code")
