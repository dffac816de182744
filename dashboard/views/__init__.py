"""The dashboard's pages; importing this package registers their routes on the blueprint."""

import dashboard.views.account
import dashboard.views.broadcasts
import dashboard.views.contacts
import dashboard.views.conversations
import dashboard.views.feedback
import dashboard.views.home
import dashboard.views.hooks
import dashboard.views.nlu
import dashboard.views.personal_data
import dashboard.views.surveys
import dashboard.views.users  # noqa: F401
