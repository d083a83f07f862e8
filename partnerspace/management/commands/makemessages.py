"""makemessages that also extracts ``N_("...")`` (gettext_noop), used for labels in tables."""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=N_"]
