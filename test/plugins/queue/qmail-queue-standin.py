#!/usr/bin/python3
# A stand-in for qmail-queue(8), for the queue/qmail-queue tests: qmail is not packaged by Debian
# (bookworm, nor bullseye; buster, the last release that had it, is no longer served).
#
# It does what qmail-queue(8) and notqmail's qmail-queue.c do at the interface: read the message
# from descriptor 0 to its end, then the envelope from descriptor 1 (`F<sender>\0`, `T<rcpt>\0`
# ..., a final `\0`); exit 54 if either cannot be read or the envelope ends early, 91 if it is not
# in that format, 11 if an address is 1003 bytes or longer; add `Received: (qmail PID invoked by
# uid UID); DATE` on top, write the message and then the envelope into the queue directory with
# fsync and a rename (the envelope file last, as qmail's todo/ entry), and exit 0.
#
# The queue directory is $QQ_STANDIN_QUEUE. For the error paths of the tests, after reading
# everything: $QQ_STANDIN_EXIT=N exits N; $QQ_STANDIN_ERROR=TEXT writes TEXT to descriptor 6 and
# exits 82 (qmail's custom error string); $QQ_STANDIN_SLEEP=S sleeps S seconds first.
import os
import sys
import time

ADDR = 1003


def read_all(fd):
    parts = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            sys.exit(54)
        if not data:
            return b''.join(parts)
        parts.append(data)


message = read_all(0)
envelope = read_all(1)

# Envelope: F address \0, then T address \0 ..., then \0.
if not envelope:
    sys.exit(54)
if envelope[:1] != b'F':
    sys.exit(91)
pos = 1
end = envelope.find(b'\0', pos)
if end == -1:
    sys.exit(54)
sender = envelope[pos:end]
if len(sender) >= ADDR:
    sys.exit(11)
pos = end + 1
recipients = []
while True:
    if pos >= len(envelope):
        sys.exit(54)
    kind = envelope[pos:pos + 1]
    if kind == b'\0':
        pos += 1
        break
    if kind != b'T':
        sys.exit(91)
    end = envelope.find(b'\0', pos + 1)
    if end == -1:
        sys.exit(54)
    rcpt = envelope[pos + 1:end]
    if len(rcpt) >= ADDR:
        sys.exit(11)
    recipients.append(rcpt)
    pos = end + 1
if pos != len(envelope) or not recipients:
    sys.exit(91)

if os.environ.get('QQ_STANDIN_SLEEP'):
    time.sleep(float(os.environ['QQ_STANDIN_SLEEP']))
if os.environ.get('QQ_STANDIN_ERROR'):
    os.write(6, os.environ['QQ_STANDIN_ERROR'].encode())
    sys.exit(82)
if os.environ.get('QQ_STANDIN_EXIT'):
    sys.exit(int(os.environ['QQ_STANDIN_EXIT']))

queue = os.environ.get('QQ_STANDIN_QUEUE')
if not queue or not os.path.isdir(queue):
    sys.exit(62)
name = '%d.%d' % (int(time.time() * 1000000), os.getpid())
date = time.strftime('%d %b %Y %H:%M:%S -0000', time.gmtime())
received = b'Received: (qmail %d invoked by uid %d); %s\n' % (os.getpid(), os.getuid(), date.encode())


def store(path, data):
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


try:
    store(os.path.join(queue, name + '.mess'), received + message)
    store(os.path.join(queue, name + '.todo'), envelope)
except OSError:
    sys.exit(53)
sys.exit(0)
