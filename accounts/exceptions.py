"""Domain errors of accounts; dumont.errors turns them into JSON with their `code`."""

from dumont.exceptions import DumontError


class EmailTaken(DumontError):
    code = "email_taken"
    default_detail = "An account with this e-mail already exists."


class WeakPassword(DumontError):
    code = "weak_password"
    default_detail = "This password is too weak."


class InvalidCredentials(DumontError):
    code = "invalid_credentials"
    default_detail = "E-mail or password is incorrect."


class DuplicateSshKey(DumontError):
    code = "duplicate_ssh_key"
    status_code = 400
    default_detail = "This SSH key is already registered in your organisation."


class UserNotFound(DumontError):
    code = "user_not_found"
    default_detail = "No account uses this e-mail; ask the person to sign up first."


class AlreadyMember(DumontError):
    code = "already_member"
    default_detail = "This person is already a member of the organisation."


class LastOwner(DumontError):
    code = "last_owner"
    status_code = 409
    default_detail = "An organisation must keep at least one owner."


class RoleForbidden(DumontError):
    code = "permission_denied"
    status_code = 403
    default_detail = "Your role does not allow this."


class OtpRequired(DumontError):
    code = "otp_required"
    default_detail = (
        "This account uses two-factor authentication: send the code of your authenticator app "
        "(or a recovery code) as `otp`."
    )


class InvalidOtp(DumontError):
    code = "invalid_otp"
    default_detail = "The two-factor code is wrong or was already used."
