"""Sublime Text command `diffill_fill`: diffill.fillInTheMiddle at the caret, or
over the first selection. Copy into Packages/User/ (needs the LSP package).

LSP's own `lsp_execute` only expands `$file_uri`/`$position` as top-level
arguments; the server takes one object {uri, position} or {uri, range}, so this
builds it and hands it to `lsp_execute`'s machinery.
"""
from LSP.plugin.core.views import first_selection_region, offset_to_point, region_to_range, uri_from_view
from LSP.plugin.execute_command import LspExecuteCommand


class DiffillFillCommand(LspExecuteCommand):
    session_name = "diffill"

    def run(self, edit, event=None, **_kwargs):
        region = first_selection_region(self.view)
        if region is None:
            return
        arg = {"uri": uri_from_view(self.view)}
        if region.empty():
            point = offset_to_point(self.view, region.b)
            arg["position"] = point.to_lsp() if hasattr(point, "to_lsp") else point
        else:
            rng = region_to_range(self.view, region)
            arg["range"] = rng.to_lsp() if hasattr(rng, "to_lsp") else rng
        super().run(edit, command_name="diffill.fillInTheMiddle", command_args=[arg],
                    session_name="diffill", event=event)
