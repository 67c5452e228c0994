"""Messages: the communication plan (who hears about what) and the change record in
the ITSM tool.
"""
