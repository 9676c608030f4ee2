import sys

from django.http import HttpResponse
from django.urls import path


def index(request):
    return HttpResponse(f"Hello from Django on Python {sys.version.split()[0]}\n")


urlpatterns = [path("", index)]
