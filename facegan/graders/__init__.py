"""The graders of dlnd_face_generation.ipynb, one module per part of the story; problem_unittests.py (beside the
notebook, as in the Udacity project) is their public face."""
