"""Compiler flags shared by the project's own targets (not generated code)."""

# Same warnings as the CMake build; -Werror keeps both builds clean.
TP_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]
