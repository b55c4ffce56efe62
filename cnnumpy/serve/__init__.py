"""The playground (``cnnumpy serve RUNS_DIR``): a local web page to draw a digit and
watch what a trained network sees, train a network live, compare runs, and follow one
training step through every layer, forward and backward.

It serves the run folders ``cnnumpy train`` writes, chosen by name among the
subfolders of RUNS_DIR, on 127.0.0.1 by default. The page (``static/``: plain HTML,
JavaScript modules and CSS, no build step, nothing fetched from the internet) talks
to a small JSON API:

- ``app``: ``make_app(runs_dir)``, the Starlette application and its routes;
  ``serve(runs_dir, host, port)`` runs it with uvicorn;
- ``store``: the run folders by name, their models loaded once and cached;
- ``images``: uploaded PNG/JPEG bytes read within limits and shaped like the
  model's input (digits fitted as MNIST's were);
- ``predict``: class probabilities, occlusion, saliency and Grad-CAM maps, feature
  maps, filters, training histories;
- ``training``: one training job at a time, in a worker process, with live events;
  ``training_form``, the form checked into ``cnnumpy train``'s arguments (and the
  models ``/api/zoo`` offers); ``training_worker``, the worker process's side;
- ``step``: the numbers of one training step, layer by layer;
- ``body``: a request's body read within limits of size and time;
- ``guard``: requests other sites make through the user's browser, refused;
- ``errors``: every error as ``{"error": message}`` with its HTTP status.

Starlette and uvicorn are needed here only: ``pip install cnnumpy[serve]``.
"""

from cnnumpy.serve.app import make_app, serve

__all__ = ["make_app", "serve"]
