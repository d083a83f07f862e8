"""The Notifications page: each owner chooses for themselves which e-mails they get about
the firm's exports (extensions/notices.py, exports/digest.py) and in which language.
Members get none, so the page is the owners'."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from partnerspace.models import Membership
from partnerspace.tenancy import owner_required


class NotificationsForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["notify_problems", "notify_digest", "notice_language"]
        help_texts = {
            "notify_problems": gettext_lazy(
                "One e-mail when a client's exports start failing or need a reconnect, and "
                "one when they work again."
            ),
            "notify_digest": gettext_lazy(
                "Once a day, the exports that failed since the day before; nothing on a day "
                "without failures."
            ),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["notice_language"].choices = [
            ("", _("The portal's default language")),
            *self.fields["notice_language"].choices[1:],
        ]


@owner_required
def notifications(request):
    # The membership of this user in the current firm: nobody else's can be reached.
    membership = Membership.objects.get(pk=request.membership.pk, user=request.user)
    form = NotificationsForm(request.POST or None, instance=membership)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Your notification settings are saved."))
        return redirect("notifications")
    return render(
        request,
        "partnerspace/notifications.html",
        {"form": form, "email": request.user.email},
    )
