/**
 * The gdb Python script that `attachAgent` runs inside `gdb -p PID` to dlopen the agent. It lives
 * here, as a string, so the package needs no extra file; lib/targets/attach.ts writes it into a
 * private 0700 directory for each attach.
 *
 * Why a script and not heaptrack's one-liner `call (void) dlopen("lib", 2)`: measured on this
 * machine (test/targets/attach.ts, and the report of issue 4), a target interrupted *inside*
 * malloc died in 14 of 15 attaches with that form: the string literal makes gdb call malloc in the
 * target to hold it, re-entering a malloc that was half done ("malloc assertion failure in
 * sysmalloc", SIGABRT). So the script:
 * - loads no debug information and needs none: every call is cast to its C type, and no call
 *   returns a struct (no hidden sret pointer; references/limits.md §6);
 * - never lets gdb allocate in the target: the path is written into a page the target mmaps;
 * - calls only at a safe point: a thread blocked in a plain blocking call (epoll_wait, nanosleep,
 *   pthread_cond_wait...) made by the program itself, or else a thread stopped at the *entry* of
 *   malloc/free/calloc/realloc (memray's choice, references/external.md §2.1) whose callers are
 *   not the loader; if neither shows up within the safe-point budget it injects nothing;
 * - bounds every call: gdb 13 has no call timeout (gdb 15's unwind-on-timeout), so a watchdog
 *   thread signals the calling thread after the call budget and `unwindonsignal` restores it;
 * - passes every other signal straight through (nothing is swallowed while attached) and
 *   detaches on every path; it reports each step as one JSON line on fd 3, and treats EOF on
 *   fd 3 (the caller cancelled, or died) as "stop at the next step and detach".
 */
export const GDB_INJECT_SCRIPT = String.raw`
import ctypes, gdb, json, os, re, select, signal, socket, threading, time

PID = int(os.environ['ALLOCSCOPE_ATTACH_PID'])
LIBRARY = os.environ['ALLOCSCOPE_ATTACH_LIBRARY']
SAFE_POINT_MS = int(os.environ['ALLOCSCOPE_ATTACH_SAFE_POINT_MS'])
CALL_MS = int(os.environ['ALLOCSCOPE_ATTACH_CALL_MS'])

try:
    channel = socket.socket(fileno=3)
except OSError:
    channel = None
cancelled = threading.Event()
waiting = threading.Event()


def mark(stage, **facts):
    facts['stage'] = stage
    line = (json.dumps(facts) + '\n').encode()
    try:
        if channel is None:
            os.write(2, line)
        else:
            channel.send(line, socket.MSG_NOSIGNAL)  # never SIGPIPE gdb if the caller is gone
    except OSError:
        pass


def listen_for_cancel():
    try:
        channel.recv(64)
    except OSError:
        pass
    cancelled.set()
    if waiting.is_set():
        os.kill(PID, signal.SIGCONT)  # ends a 'continue' that waits for a safe point


if channel is not None:
    threading.Thread(target=listen_for_cancel, daemon=True).start()


def is_cancelled():
    """Also looks at fd 3 itself: the listener thread may not have run yet (the GIL)."""
    if cancelled.is_set():
        return True
    if channel is not None and select.select([channel], [], [], 0)[0]:
        cancelled.set()
    return cancelled.is_set()

# Code that may hold the loader's or the allocator's locks, or be half-way through them.
RUNTIME = re.compile(r'/(libc\.so|libc\.musl|ld-linux|ld-musl|libpthread\.so|libdl\.so|libjemalloc|libtcmalloc|libmimalloc)[^/]*$')
UNSAFE = re.compile(r'/(ld-linux|ld-musl|libjemalloc|libtcmalloc|libmimalloc)[^/]*$')
BLOCKING = {
    'nanosleep', 'clock_nanosleep', 'usleep', 'sleep', 'pause', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2',
    'poll', 'ppoll', 'select', 'pselect', 'read', 'readv', 'pread', 'recv', 'recvfrom', 'recvmsg', 'recvmmsg',
    'accept', 'accept4', 'wait', 'waitpid', 'wait4', 'waitid', 'sigwait', 'sigwaitinfo', 'sigtimedwait',
    'sigsuspend', 'pthread_cond_wait', 'pthread_cond_timedwait', 'pthread_cond_clockwait', 'pthread_join',
    'pthread_timedjoin_np', 'pthread_clockjoin_np', 'pthread_clockjoin_ex', 'sem_wait', 'sem_timedwait',
    'sem_clockwait', 'msgrcv', 'io_getevents',
}


def plain(name):
    """__GI___nanosleep, ___pthread_cond_wait, __libc_read64 -> nanosleep, pthread_cond_wait, read."""
    if name is None:
        return None
    name = re.sub(r'^_*(GI_+)?(libc_)?', '', name)
    return name if name in BLOCKING else re.sub(r'(_?time)?64$', '', name)


def library_of(pc):
    try:
        return gdb.solib_name(pc)
    except Exception:
        return None


def frames(thread, limit):
    thread.switch()
    out = []
    frame = gdb.newest_frame()
    while frame is not None and len(out) < limit:
        out.append(frame)
        try:
            frame = frame.older()
        except gdb.error:
            break
    return out


MACHINE = os.uname().machine
# The instruction a thread blocked in a system call has just executed, and tgkill's number.
SYSCALL_INSN = {'x86_64': b'\x0f\x05', 'aarch64': b'\x01\x00\x00\xd4'}.get(MACHINE, b'\x0f\x05')
SYS_TGKILL = {'x86_64': 234, 'aarch64': 131}.get(MACHINE, 234)


def in_syscall(pc):
    try:
        return bytes(gdb.selected_inferior().read_memory(pc - len(SYSCALL_INSN), len(SYSCALL_INSN))) == SYSCALL_INSN
    except gdb.error:
        return False


def blocking_call_of(thread):
    """The blocking call the thread sleeps in, if the program made it itself (not the allocator or
    the loader); None when the thread is anywhere else, or its stack cannot be read."""
    stack = frames(thread, 48)
    if not stack or not in_syscall(stack[0].pc()):
        return None
    outermost = None
    for frame in stack:
        library = library_of(frame.pc())
        if library is None or not RUNTIME.search(library):
            return outermost if outermost in BLOCKING else None
        if UNSAFE.search(library):
            return None
        outermost = plain(frame.name())
    return None


def find_blocked_thread():
    for thread in sorted(gdb.selected_inferior().threads(), key=lambda t: t.num):
        call = blocking_call_of(thread)
        if call is not None:
            return thread, 'blocked in ' + call
    return None, None


stops = []
gdb.events.stop.connect(stops.append)


def called_by_program(thread):
    """At an allocator entry: true when no caller up to the program's own code is the loader, the
    allocator, or a C library function gdb cannot name."""
    for frame in frames(thread, 16)[1:]:
        library = library_of(frame.pc())
        if library is None or not RUNTIME.search(library):
            return True
        name = frame.name()
        if UNSAFE.search(library) or name is None or re.match(r'_*dl', name):
            return False
    return False


def wait_for_allocator_entry(deadline):
    points = []
    for name in ('malloc', 'free', 'calloc', 'realloc'):
        try:
            points.append(gdb.Breakpoint(name, internal=True))
        except gdb.error:
            pass
    # SIGCONT ends the wait (sent by the watchdog below or a cancel); it is never passed on then.
    # ('noprint' would imply 'nostop': gdb's handle command.)
    gdb.execute('handle SIGCONT stop print nopass', to_string=True)
    found = (None, None)
    try:
        while points and not is_cancelled() and found[0] is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            returned = threading.Event()
            fired = []

            def watchdog():
                if not returned.wait(remaining):
                    fired.append(True)
                    os.kill(PID, signal.SIGCONT)

            del stops[:]
            threading.Thread(target=watchdog, daemon=True).start()
            waiting.set()
            try:
                gdb.execute('continue', to_string=True)
            finally:
                waiting.clear()
                returned.set()
            hits = [s for s in stops if isinstance(s, gdb.BreakpointEvent) and any(b in points for b in s.breakpoints)]
            if hits and called_by_program(gdb.selected_thread()):
                found = (gdb.selected_thread(), 'at the entry of ' + hits[0].breakpoints[0].location)
            elif fired:
                break
    finally:
        for point in points:
            point.delete()
        # A SIGCONT sent in the same instant as a breakpoint hit may still be pending: let it through.
        gdb.execute('handle SIGCONT nostop noprint pass', to_string=True)
    if found[0] is None and not is_cancelled():
        found = find_blocked_thread()
    return found


def signal_blocked(tid, number):
    try:
        with open('/proc/%d/task/%d/status' % (PID, tid)) as status:
            for line in status:
                if line.startswith('SigBlk:'):
                    return (int(line.split()[1], 16) >> (number - 1)) & 1 == 1
    except OSError:
        pass
    return True


libc = ctypes.CDLL(None, use_errno=True)


def bounded_call(thread, expression):
    """Runs one call in the target; if it has not returned within CALL_MS, a signal to its thread
    makes gdb unwind it (unwindonsignal) and the call fails."""
    thread.switch()
    tid = thread.ptid[1]
    choice = next((s for s in ('SIGWINCH', 'SIGURG', 'SIGCONT') if not signal_blocked(tid, getattr(signal, s))), None)
    if choice is None:
        raise RuntimeError('thread %d blocks every watchdog signal' % tid)
    gdb.execute('handle %s stop print nopass' % choice, to_string=True)
    returned = threading.Event()
    fired = []

    def watchdog():
        if not returned.wait(CALL_MS / 1000.0):
            fired.append(True)
            libc.syscall(SYS_TGKILL, PID, tid, getattr(signal, choice))

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        return int(gdb.parse_and_eval(expression))
    except gdb.error:
        if fired:
            raise TimeoutError('a call in the target did not return within %d ms; gdb unwound it' % CALL_MS)
        raise
    finally:
        returned.set()
        gdb.execute('handle %s nostop noprint pass' % choice, to_string=True)


def inject():
    inferior = gdb.selected_inferior()
    if inferior.pid != PID:
        mark('error', code='attach', message='gdb could not attach to pid %d' % PID)
        return
    mark('attached', threads=len(inferior.threads()))
    for setting in ('pagination off', 'confirm off', 'unwindonsignal on', 'scheduler-locking off',
                    'breakpoint pending off', 'print thread-events off'):
        gdb.execute('set ' + setting, to_string=True)
    gdb.execute('handle all nostop noprint pass', to_string=True)
    gdb.execute('handle SIGINT nostop noprint pass', to_string=True)
    # sharedlibrary takes a POSIX basic regex: no alternation, one pattern each.
    for pattern in (r'/libc\.so', r'/libc\.musl', r'/libdl\.so', '/libjemalloc', '/libtcmalloc', '/libmimalloc'):
        try:
            gdb.execute('sharedlibrary ' + pattern, to_string=True)
        except gdb.error:
            pass
    if is_cancelled():
        return
    mark('symbols')
    thread, how = find_blocked_thread()
    if thread is None:
        thread, how = wait_for_allocator_entry(time.monotonic() + SAFE_POINT_MS / 1000.0)
    if is_cancelled():
        return
    if thread is None:
        mark('error', code='no-safe-point', message='no thread of pid %d reached a safe point within %d ms: none slept in a plain blocking call or entered malloc/free from its own code' % (PID, SAFE_POINT_MS))
        return
    mark('safe-point', thread=thread.ptid[1], how=how)
    page = bounded_call(thread, '((void*(*)(void*, unsigned long, int, int, int, long))mmap)(0, 4096, 3, 0x22, -1, 0)')
    if page in (0, 2 ** 64 - 1, -1):
        mark('error', code='call', message='mmap in the target failed')
        return
    error = None
    try:
        inferior.write_memory(page, LIBRARY.encode() + b'\0')
        handle = bounded_call(thread, '((void*(*)(const char*, int))dlopen)((const char*)%d, 2)' % page)
        if handle == 0:
            text = bounded_call(thread, '((char*(*)(void))dlerror)()')
            error = gdb.Value(text).cast(gdb.lookup_type('char').pointer()).string(errors='replace') if text else 'no reason given'
    finally:
        bounded_call(thread, '((int(*)(void*, unsigned long))munmap)((void*)%d, 4096)' % page)
    if error is not None:
        mark('error', code='dlopen', message=error)
    else:
        mark('loaded', how=how)


try:
    inject()
except TimeoutError as error:
    mark('error', code='timeout', message=str(error))
except Exception as error:
    mark('error', code='gdb', message=str(error))
finally:
    try:
        if gdb.selected_inferior().pid == PID:
            gdb.execute('detach', to_string=True)
        mark('detached')
    except Exception as error:
        mark('error', code='detach', message=str(error))
`;
