"""Workspace sync: the host workspace and the sandbox's share, kept equal both ways.
Knows only two trees and a journal; the supervisor wires it to a sandbox."""
