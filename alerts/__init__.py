"""Alert routing, grouping, inhibition, silences and delivery. Not built yet: see the alerts issue."""
