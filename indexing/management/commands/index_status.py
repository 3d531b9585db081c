import json

from django.core.management.base import BaseCommand

from indexing.services import index_status


class Command(BaseCommand):
    help = "Counts of products, photos, embedded photos, pending and failed rows, and the active model."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        status = index_status()
        if options["json"]:
            self.stdout.write(json.dumps(status))
        else:
            for key, value in status.items():
                self.stdout.write(f"{key:>16}: {value}")
