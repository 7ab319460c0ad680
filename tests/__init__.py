"""The test suite. Its folders mirror the layers of explorer/ (text, model, interpret, training, figures, cli)
and the app (app: pages, AppTest, the browser), so the tests of a module sit where the module does."""
