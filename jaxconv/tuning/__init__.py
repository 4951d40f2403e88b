"""What depends on the machine, below every op: the CPU's class and cores, jaxlib's version,
the one timer, the committed per-class tables, and the files and caches those read and write.

It imports no op and no layer; `jaxconv.functional` asks it for the machine class and the
tables, so a reader of `jaxconv.functional` finds arithmetic and the choice between
formulations, nothing that reads the machine, the clock or the disk.
"""
