"""Approver identity, the approvals CLI and web page (issues #3 and #7).

Until then a call that needs approval ends its run as `escalated` with the pending action
recorded in the RunSummary.
"""
