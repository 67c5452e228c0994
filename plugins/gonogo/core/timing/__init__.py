"""Time: the one time plan (planned start T, gates on the clock, the forecast) and
how durations and offsets relative to T are read and written.
"""
