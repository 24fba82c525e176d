"""Overdue lights (红黄灯), escalation and the horse race (赛马) of cities and districts."""
