"""Apply steps: each one stage of a deploy, sequenced by controller.apply."""
