"""The Bxthre3 terminal UI (Textual). Import lazily: only `bxthre3 ui` should load Textual."""
