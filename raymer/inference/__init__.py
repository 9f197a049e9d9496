"""The in-process path, no Ray and no HTTP: ``core`` (a clip -> its pieces -> Whisper -> text
encoder -> trained head -> no-speech rule; what recognize's actors and Serve's replicas
hold), ``prediction`` (the typed answers: a ``SegmentPrediction`` is a row of ``raymer
recognize``, a ``Prediction``'s ``to_api`` the service's JSON and the library's result) and
``recognizer`` (``raymer.Recognizer``, the library)."""
