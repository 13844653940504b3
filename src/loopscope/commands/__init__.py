"""The drivers of the commands, under the command line (`loopscope.cli`) that parses them: each
runs one command, headless or in the dashboard, and returns its exit code."""
