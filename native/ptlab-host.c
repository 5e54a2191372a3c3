/*
 * ptlab-host: executes page-table-relevant syscalls on command and reports
 * the host kernel's figures, for `ptlab diff-kernel`.
 *
 * Build: cc -O2 -Wall -Wextra -Werror [-static] -o ptlab-host ptlab-host.c
 *
 * Usage:
 *   ptlab-host                     protocol mode (stdin/stdout, see below)
 *   ptlab-host bench BYTES REPS    micro-benchmark mode
 *   ptlab-host probe               zero-page / huge-zero-page / PT-reclaim checks
 *   ptlab-host mkswap DEV          write a swap header on DEV (all of it usable)
 *   ptlab-host swapon DEV          swapon(2) with default priority
 *   ptlab-host swapoff DEV         swapoff(2)
 *
 * Protocol: one ASCII command line in, one reply line (or a block of lines
 * ending with a line ".") out. Every command starts with a process slot
 * number k (0 = the initial process; 1..31 are created by "K"). Numbers are
 * decimal ("0x" prefixed hex is accepted too); addresses in replies are hex
 * without "0x". Errors reply "E <ERRNO-NAME> <message>".
 *
 *   k M len prot flags addr fd offset   mmap            -> A <addr>
 *   k F path size                       open/create file, grow to size
 *                                                       -> D <fd>
 *   k R fd                              close fd        -> O
 *   k U addr len                        munmap          -> O
 *   k P addr len prot                   mprotect        -> O
 *   k V addr len advice                 madvise         -> O
 *   k Q addr oldlen newlen flags [new]  mremap          -> A <addr>
 *   k B delta                           brk(cur+delta)  -> A <new break>
 *   k T addr len stride w               touch           -> O
 *   k K newslot                         fork            -> C <child pid>
 *   k X                                 exit            -> O
 *   k S                                 stats           -> S pte anon file
 *                                          shmem anonhuge vmrss vmsize swap (kB)
 *   k Z                                 snapshot block  (m/p/h lines, ".")
 *   k G addr npages                     page-state block (g lines, ".")
 *   k E                                 environment block (".")
 *
 * Process structure: the root creates one command pipe per slot and one
 * shared reply pipe before anything else. Every slot process reads commands
 * only from its own slot pipe and writes each reply with one write() of less
 * than PIPE_BUF bytes (block replies may take several writes; the exchange is
 * strictly sequential so nothing interleaves). The root reads stdin, executes
 * slot 0 commands itself, forwards the others, and relays the single reply
 * to stdout. The root holds a pidfd per slot process so that a slot process
 * that dies unexpectedly produces "E ECHILD" instead of a hang.
 *
 * The helper tries hard not to perturb its own address space after start:
 * the stack is pre-faulted 256 KiB deep, every buffer is static, every VMA of
 * the helper itself is pre-populated with MADV_POPULATE_{READ,WRITE}, no
 * stdio or malloc is used after start, and a forked child re-populates the
 * helper's read-only file mappings (fork does not copy their page tables)
 * before it reports ready.
 *
 * Protocol mode pins the root to the CPU it starts on (slot processes
 * inherit it): a page just faulted sits in that CPU's LRU batch, which
 * MADV_PAGEOUT/COLD drain only on the calling CPU (lru_add_drain()); a
 * folio left in another CPU's batch is not on the LRU and is skipped.
 *
 * "G" lines: "g start npages flags kpf kpc", one per run of pages in the same
 * state: flags = bits 55..63 of the /proc/self/pagemap entry shifted down
 * (bit 0 soft-dirty, 1 exclusive, 6 file/shared, 7 swapped, 8 present);
 * for a present page whose PFN is visible (CAP_SYS_ADMIN) kpf is its
 * /proc/kpageflags word (hex) and kpc its /proc/kpagecount, "-" otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef PR_SET_CHILD_SUBREAPER
#define PR_SET_CHILD_SUBREAPER 36
#endif

/* PAGEMAP_SCAN (Linux 6.7+); defined here because libc headers may be older. */
struct ptl_page_region {
	uint64_t start;
	uint64_t end;
	uint64_t categories;
};
struct ptl_pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};
#define PTL_PAGEMAP_SCAN _IOWR('f', 16, struct ptl_pm_scan_arg)
#define PTL_PAGE_IS_FILE (1ULL << 2)
#define PTL_PAGE_IS_PRESENT (1ULL << 3)
#define PTL_PAGE_IS_PFNZERO (1ULL << 5)
#define PTL_PAGE_IS_HUGE (1ULL << 6)

#define MAX_SLOTS 32
#define PAGE 4096UL
#define PMD_SZ (2UL * 1024 * 1024)
#define STACK_PREFAULT (256 * 1024)
#define MAX_LINE 4000 /* < PIPE_BUF so forwarding a command is atomic */
#define MAX_OWN 64

/* ---------------------------------------------------------------- state */

static int is_root = 1;
static int my_slot = 0;
static int out_fd = 1;

static int slot_rd[MAX_SLOTS] = {-1};
static int slot_wr[MAX_SLOTS] = {-1};
static int reply_rd = -1, reply_wr = -1;
/* root only */
static pid_t slot_pid[MAX_SLOTS];
static int slot_pidfd[MAX_SLOTS];

static struct {
	uintptr_t start, end;
	int writable;
} own[MAX_OWN];
static int nown;

static int pagemap_scan_ok = 1; /* cleared when PAGEMAP_SCAN is unsupported */

/* ---------------------------------------------------------------- buffers */

static char outbuf[65536];
static size_t outlen;
static char inbuf[65536];   /* root: stdin; slot: slot pipe */
static size_t inlen;
static char fwdbuf[MAX_LINE + 2];
static char relaybuf[65536];
static char capbuf[256];    /* first reply line captured by the relay */
static size_t caplen;
static char filebuf[65536]; /* /proc/self/maps chunks */
static char smallbuf[16384];
static char small2[4096];
static uint64_t pmbuf[8192];
static struct ptl_page_region regbuf[2048];
static char direntbuf[8192];
static char pathbuf[512];
static char errnamebuf[32];

/* ---------------------------------------------------------------- output */

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void out_flush(void)
{
	if (outlen)
		write_all(out_fd, outbuf, outlen);
	outlen = 0;
}

static void out_raw(const char *s, size_t n)
{
	if (outlen + n > sizeof outbuf)
		out_flush();
	if (n > sizeof outbuf) {
		write_all(out_fd, s, n);
		return;
	}
	memcpy(outbuf + outlen, s, n);
	outlen += n;
}

static void out_str(const char *s) { out_raw(s, strlen(s)); }
static void out_c(char c) { out_raw(&c, 1); }

static void out_u(unsigned long long v)
{
	char t[24];
	int i = 24;
	do {
		t[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	out_raw(t + i, (size_t)(24 - i));
}

static void out_x(unsigned long long v)
{
	char t[20];
	int i = 20;
	do {
		t[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	out_raw(t + i, (size_t)(20 - i));
}

/* end of a reply line: flush so that it goes out with one write() */
static void out_end(void)
{
	out_c('\n');
	out_flush();
}

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case ECHILD: return "ECHILD";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ENOTTY: return "ENOTTY";
	case EOVERFLOW: return "EOVERFLOW";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EHWPOISON: return "EHWPOISON";
	default: {
		/* "E" + number */
		char t[16];
		int i = 16, n = 0;
		unsigned v = (unsigned)e;
		do {
			t[--i] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		errnamebuf[n++] = 'E';
		while (i < 16)
			errnamebuf[n++] = t[i++];
		errnamebuf[n] = 0;
		return errnamebuf;
	}
	}
}

static void reply_err_name(const char *name, const char *msg)
{
	outlen = 0;
	out_str("E ");
	out_str(name);
	out_c(' ');
	out_str(msg);
	out_end();
}

static void reply_err(int e, const char *msg) { reply_err_name(errname(e), msg); }

static void reply_ok(void)
{
	out_c('O');
	out_end();
}

static void reply_addr(unsigned long long a)
{
	out_str("A ");
	out_x(a);
	out_end();
}

/* ---------------------------------------------------------------- parsing */

static char *next_tok(char **pp)
{
	char *p = *pp;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p) {
		*pp = p;
		return NULL;
	}
	char *s = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = 0;
	*pp = p;
	return s;
}

static int parse_u64(const char *s, unsigned long long *out)
{
	unsigned long long v = 0;
	if (!s || !*s)
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		if (!*s)
			return -1;
		for (; *s; s++) {
			int d;
			if (*s >= '0' && *s <= '9')
				d = *s - '0';
			else if (*s >= 'a' && *s <= 'f')
				d = *s - 'a' + 10;
			else if (*s >= 'A' && *s <= 'F')
				d = *s - 'A' + 10;
			else
				return -1;
			if (v >> 60)
				return -1;
			v = v * 16 + (unsigned)d;
		}
	} else {
		for (; *s; s++) {
			if (*s < '0' || *s > '9')
				return -1;
			unsigned long long nv = v * 10 + (unsigned)(*s - '0');
			if (nv / 10 != v)
				return -1;
			v = nv;
		}
	}
	*out = v;
	return 0;
}

static int parse_i64(const char *s, long long *out)
{
	unsigned long long v;
	if (!s)
		return -1;
	if (*s == '-') {
		if (parse_u64(s + 1, &v) || v > (1ULL << 63))
			return -1;
		*out = (long long)(0 - v);
		return 0;
	}
	if (parse_u64(s, &v) || v >= (1ULL << 63))
		return -1;
	*out = (long long)v;
	return 0;
}

/* parse exactly n unsigned numbers from the remaining tokens */
static int parse_args(char **pp, unsigned long long *v, int n)
{
	for (int i = 0; i < n; i++)
		if (parse_u64(next_tok(pp), &v[i]))
			return -1;
	return 0;
}

/* ---------------------------------------------------------------- files */

/* read a whole (small) file into buf; returns length or -1 */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	return (ssize_t)n;
}

/* value (in kB) of "Name:   123 kB" in a /proc status-like buffer, or 0 */
static unsigned long long field_kb(const char *buf, size_t len, const char *name)
{
	size_t nl = strlen(name);
	const char *p = buf, *end = buf + len;
	while (p < end) {
		if ((size_t)(end - p) > nl && memcmp(p, name, nl) == 0) {
			p += nl;
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			unsigned long long v = 0;
			while (p < end && *p >= '0' && *p <= '9')
				v = v * 10 + (unsigned)(*p++ - '0');
			return v;
		}
		const char *nlp = memchr(p, '\n', (size_t)(end - p));
		if (!nlp)
			break;
		p = nlp + 1;
	}
	return 0;
}

/* one parsed line of /proc/self/maps */
struct maps_line {
	unsigned long long start, end, offset;
	char perms[5];
	const char *path; /* NUL-terminated, may be "" */
};

static int parse_hex(const char **pp, const char *end, unsigned long long *v)
{
	const char *p = *pp;
	unsigned long long x = 0;
	int n = 0;
	for (; p < end; p++, n++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			break;
		x = x * 16 + (unsigned)d;
	}
	*pp = p;
	*v = x;
	return n ? 0 : -1;
}

/* parse a NUL-terminated maps line in place */
static int parse_maps_line(char *line, struct maps_line *m)
{
	const char *p = line, *end = line + strlen(line);
	if (parse_hex(&p, end, &m->start) || p >= end || *p++ != '-')
		return -1;
	if (parse_hex(&p, end, &m->end) || p >= end || *p++ != ' ')
		return -1;
	if (end - p < 5)
		return -1;
	memcpy(m->perms, p, 4);
	m->perms[4] = 0;
	p += 5;
	if (parse_hex(&p, end, &m->offset))
		return -1;
	/* dev, inode */
	for (int f = 0; f < 2; f++) {
		while (p < end && *p == ' ')
			p++;
		while (p < end && *p != ' ')
			p++;
	}
	while (p < end && *p == ' ')
		p++;
	m->path = p;
	return 0;
}

typedef void (*maps_cb)(struct maps_line *m, void *ctx);

/* stream /proc/self/maps through cb, one line at a time */
static int for_each_map(maps_cb cb, void *ctx)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t have = 0;
	for (;;) {
		ssize_t r = read(fd, filebuf + have, sizeof filebuf - 1 - have);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		have += (size_t)r;
		size_t pos = 0;
		for (;;) {
			char *nl = memchr(filebuf + pos, '\n', have - pos);
			if (!nl)
				break;
			*nl = 0;
			struct maps_line m;
			if (parse_maps_line(filebuf + pos, &m) == 0)
				cb(&m, ctx);
			pos = (size_t)(nl - filebuf) + 1;
		}
		memmove(filebuf, filebuf + pos, have - pos);
		have -= pos;
		if (r == 0 || have >= sizeof filebuf - 1)
			break;
	}
	close(fd);
	return 0;
}

static int is_special_map(const char *path)
{
	return strcmp(path, "[vsyscall]") == 0 || strcmp(path, "[vvar]") == 0 ||
	       strcmp(path, "[vvar_vclock]") == 0 || strcmp(path, "[vdso]") == 0 ||
	       strcmp(path, "[uprobes]") == 0;
}

/* ---------------------------------------------------------------- self-populate */

static void populate_cb(struct maps_line *m, void *ctx)
{
	(void)ctx;
	/* [vdso] is populated (its text is mapped in the root once used);
	 * [vvar*] are PFN maps and [vsyscall] is not a real VMA */
	if (is_special_map(m->path) && strcmp(m->path, "[vdso]") != 0)
		return;
	int w = m->perms[1] == 'w' && m->perms[3] == 'p';
	if (w)
		madvise((void *)(uintptr_t)m->start, m->end - m->start, MADV_POPULATE_WRITE);
	else if (m->perms[0] == 'r' || m->perms[2] == 'x')
		madvise((void *)(uintptr_t)m->start, m->end - m->start, MADV_POPULATE_READ);
	if (nown < MAX_OWN) {
		own[nown].start = m->start;
		own[nown].end = m->end;
		own[nown].writable = w;
		nown++;
	}
}

__attribute__((noinline)) static void prefault_stack(void)
{
	volatile char buf[STACK_PREFAULT];
	for (size_t i = 0; i < sizeof buf; i += PAGE)
		buf[i] = 0;
	buf[sizeof buf - 1] = 0;
}

/* after fork: page tables of file mappings without anon pages are not copied */
static void repopulate_own(void)
{
	for (int i = 0; i < nown; i++)
		if (!own[i].writable)
			madvise((void *)own[i].start, own[i].end - own[i].start, MADV_POPULATE_READ);
}

/* ---------------------------------------------------------------- touch */

static sigjmp_buf touch_jb;
static volatile sig_atomic_t touch_active;
static volatile uintptr_t fault_addr;
static volatile int fault_sig;

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!touch_active) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		sigaction(sig, &sa, NULL);
		return; /* re-executes the faulting instruction: default action */
	}
	touch_active = 0;
	fault_addr = (uintptr_t)si->si_addr;
	fault_sig = sig;
	siglongjmp(touch_jb, 1);
}

static void do_touch(unsigned long long addr, unsigned long long len,
		     unsigned long long stride, int w)
{
	if (stride == 0) {
		reply_err(EINVAL, "touch: stride 0");
		return;
	}
	if (sigsetjmp(touch_jb, 1)) {
		outlen = 0;
		out_str(fault_sig == SIGBUS ? "E SIGBUS" : "E SIGSEGV");
		out_str(" touch: fault at ");
		out_x(fault_addr);
		out_end();
		return;
	}
	touch_active = 1;
	if (w) {
		for (unsigned long long off = 0; off < len; off += stride)
			*(volatile unsigned char *)(uintptr_t)(addr + off) = 0x5a;
	} else {
		for (unsigned long long off = 0; off < len; off += stride)
			(void)*(volatile unsigned char *)(uintptr_t)(addr + off);
	}
	touch_active = 0;
	reply_ok();
}

/* ---------------------------------------------------------------- stats */

static void do_stats(void)
{
	ssize_t n = read_small("/proc/self/status", smallbuf, sizeof smallbuf);
	if (n < 0) {
		reply_err(errno, "stats: /proc/self/status");
		return;
	}
	ssize_t n2 = read_small("/proc/self/smaps_rollup", small2, sizeof small2);
	unsigned long long ahp = n2 > 0 ? field_kb(small2, (size_t)n2, "AnonHugePages:") : 0;
	out_str("S ");
	out_u(field_kb(smallbuf, (size_t)n, "VmPTE:"));
	out_c(' ');
	out_u(field_kb(smallbuf, (size_t)n, "RssAnon:"));
	out_c(' ');
	out_u(field_kb(smallbuf, (size_t)n, "RssFile:"));
	out_c(' ');
	out_u(field_kb(smallbuf, (size_t)n, "RssShmem:"));
	out_c(' ');
	out_u(ahp);
	out_c(' ');
	out_u(field_kb(smallbuf, (size_t)n, "VmRSS:"));
	out_c(' ');
	out_u(field_kb(smallbuf, (size_t)n, "VmSize:"));
	out_c(' ');
	out_u(field_kb(smallbuf, (size_t)n, "VmSwap:"));
	out_end();
}

/* ---------------------------------------------------------------- snapshot */

struct run_state {
	int pmfd;
	int have;
	unsigned long long start, end;
	char kind;
	int zero;
};

static void run_emit(struct run_state *rs)
{
	if (!rs->have)
		return;
	out_str("p ");
	out_x(rs->start);
	out_c(' ');
	out_u((rs->end - rs->start) / PAGE);
	out_c(' ');
	out_c(rs->kind);
	out_c(' ');
	out_c(rs->zero ? '1' : '0');
	out_c('\n');
	rs->have = 0;
}

static void run_add(struct run_state *rs, unsigned long long s, unsigned long long e,
		    char kind, int zero)
{
	if (rs->have && rs->end == s && rs->kind == kind && rs->zero == zero) {
		rs->end = e;
		return;
	}
	run_emit(rs);
	rs->have = 1;
	rs->start = s;
	rs->end = e;
	rs->kind = kind;
	rs->zero = zero;
}

static void snap_m_cb(struct maps_line *m, void *ctx)
{
	(void)ctx;
	out_str("m ");
	out_x(m->start);
	out_c(' ');
	out_x(m->end);
	out_c(' ');
	out_str(m->perms);
	out_c(' ');
	out_x(m->offset);
	out_c(' ');
	out_str(m->path);
	out_c('\n');
}

/* returns 0 on success; -1 with errno set on failure, *reached = where the
 * scan stopped (the caller continues from there with /proc/self/pagemap) */
static int scan_vma_ioctl(struct run_state *rs, unsigned long long s, unsigned long long e,
			  unsigned long long *reached)
{
	struct ptl_pm_scan_arg a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.start = s;
	a.end = e;
	a.vec = (uint64_t)(uintptr_t)regbuf;
	a.vec_len = sizeof regbuf / sizeof regbuf[0];
	a.category_mask = PTL_PAGE_IS_PRESENT;
	a.return_mask = PTL_PAGE_IS_PRESENT | PTL_PAGE_IS_FILE | PTL_PAGE_IS_PFNZERO |
			PTL_PAGE_IS_HUGE;
	for (;;) {
		long n = ioctl(rs->pmfd, PTL_PAGEMAP_SCAN, &a);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*reached = a.start;
			return -1;
		}
		for (long i = 0; i < n; i++) {
			struct ptl_page_region *r = &regbuf[i];
			char kind = (r->categories & PTL_PAGE_IS_FILE) ? 'f' : 'a';
			int zero = (r->categories & PTL_PAGE_IS_PFNZERO) != 0;
			run_add(rs, r->start, r->end, kind, zero);
			if (r->categories & PTL_PAGE_IS_HUGE) {
				unsigned long long h = (r->start + PMD_SZ - 1) & ~(PMD_SZ - 1);
				for (; h + PMD_SZ <= r->end; h += PMD_SZ) {
					out_str("h ");
					out_x(h);
					out_c('\n');
				}
			}
		}
		if (a.walk_end >= e || a.walk_end <= a.start)
			break;
		a.start = a.walk_end;
	}
	return 0;
}

static void scan_vma_pagemap(struct run_state *rs, unsigned long long s, unsigned long long e)
{
	const size_t maxn = sizeof pmbuf / sizeof pmbuf[0];
	for (unsigned long long a = s; a < e;) {
		size_t n = (size_t)((e - a) / PAGE);
		if (n > maxn)
			n = maxn;
		ssize_t r = pread(rs->pmfd, pmbuf, n * 8, (off_t)((a / PAGE) * 8));
		if (r <= 0)
			return;
		n = (size_t)r / 8;
		for (size_t i = 0; i < n; i++) {
			uint64_t v = pmbuf[i];
			if (v >> 63)
				run_add(rs, a + i * PAGE, a + (i + 1) * PAGE,
					(v >> 61) & 1 ? 'f' : 'a', 0);
		}
		a += n * PAGE;
	}
}

static void snap_p_cb(struct maps_line *m, void *ctx)
{
	struct run_state *rs = ctx;
	if (strcmp(m->path, "[vsyscall]") == 0)
		return;
	/* runs never span VMA boundaries */
	run_emit(rs);
	unsigned long long from = m->start;
	if (pagemap_scan_ok) {
		if (scan_vma_ioctl(rs, m->start, m->end, &from) == 0) {
			run_emit(rs);
			return;
		}
		int e = errno;
		if (e == ENOTTY || e == ENOSYS || e == EINVAL)
			pagemap_scan_ok = 0; /* kernel older than 6.7 */
	}
	scan_vma_pagemap(rs, from, m->end);
	run_emit(rs);
}

static void do_snapshot(void)
{
	int pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pmfd < 0) {
		reply_err(errno, "snapshot: /proc/self/pagemap");
		return;
	}
	if (for_each_map(snap_m_cb, NULL) < 0) {
		int e = errno;
		close(pmfd);
		reply_err(e, "snapshot: /proc/self/maps");
		return;
	}
	struct run_state rs;
	memset(&rs, 0, sizeof rs);
	rs.pmfd = pmfd;
	for_each_map(snap_p_cb, &rs);
	close(pmfd);
	out_str(".");
	out_end();
}

/* ---------------------------------------------------------------- page states */

struct pg_run {
	int have;
	unsigned long long start, n, flags, kpf, kpc;
	int known;
};

static void pg_emit(struct pg_run *r)
{
	if (!r->have)
		return;
	out_str("g ");
	out_x(r->start);
	out_c(' ');
	out_u(r->n);
	out_c(' ');
	out_x(r->flags);
	out_c(' ');
	if (r->known) {
		out_x(r->kpf);
		out_c(' ');
		out_u(r->kpc);
	} else {
		out_str("- -");
	}
	out_c('\n');
	r->have = 0;
}

static int pread_u64(int fd, unsigned long long idx, uint64_t *v)
{
	return fd >= 0 && pread(fd, v, 8, (off_t)(idx * 8)) == 8 ? 0 : -1;
}

static void do_pages(unsigned long long addr, unsigned long long npages)
{
	if (addr % PAGE || npages > (1ULL << 36)) {
		reply_err(EINVAL, "usage: G addr npages (addr page aligned)");
		return;
	}
	int pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pmfd < 0) {
		reply_err(errno, "pages: /proc/self/pagemap");
		return;
	}
	/* root only; without them the kpf/kpc columns are "-" */
	int kfd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	int cfd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
	const size_t maxn = sizeof pmbuf / sizeof pmbuf[0];
	struct pg_run r;
	memset(&r, 0, sizeof r);
	unsigned long long done = 0;
	while (done < npages) {
		size_t n = (size_t)(npages - done);
		if (n > maxn)
			n = maxn;
		unsigned long long a = addr + done * PAGE;
		ssize_t got = pread(pmfd, pmbuf, n * 8, (off_t)((a / PAGE) * 8));
		if (got <= 0) {
			int e = got < 0 ? errno : EIO;
			close(pmfd);
			if (kfd >= 0)
				close(kfd);
			if (cfd >= 0)
				close(cfd);
			reply_err(e, "pages: reading /proc/self/pagemap");
			return;
		}
		n = (size_t)got / 8;
		for (size_t i = 0; i < n; i++) {
			uint64_t v = pmbuf[i];
			unsigned long long flags = v >> 55;
			uint64_t kpf = 0, kpc = 0;
			int known = 0;
			uint64_t pfn = v & ((1ULL << 55) - 1);
			if ((v >> 63) && pfn != 0 && pread_u64(kfd, pfn, &kpf) == 0 &&
			    pread_u64(cfd, pfn, &kpc) == 0)
				known = 1;
			if (r.have && r.flags == flags && r.known == known &&
			    (!known || (r.kpf == kpf && r.kpc == kpc))) {
				r.n++;
				continue;
			}
			pg_emit(&r);
			r.have = 1;
			r.start = a + i * PAGE;
			r.n = 1;
			r.flags = flags;
			r.known = known;
			r.kpf = kpf;
			r.kpc = kpc;
		}
		done += n;
	}
	pg_emit(&r);
	close(pmfd);
	if (kfd >= 0)
		close(kfd);
	if (cfd >= 0)
		close(cfd);
	out_str(".");
	out_end();
}

/* ---------------------------------------------------------------- environment */

static void out_file_line(const char *path)
{
	ssize_t n = read_small(path, small2, sizeof small2 - 1);
	if (n < 0) {
		out_c('-');
		return;
	}
	while (n > 0 && (small2[n - 1] == '\n' || small2[n - 1] == ' '))
		n--;
	for (ssize_t i = 0; i < n; i++)
		if (small2[i] == '\n')
			small2[i] = ' ';
	out_raw(small2, (size_t)n);
}

struct ptl_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static void do_env(void)
{
	static const char thp_dir[] = "/sys/kernel/mm/transparent_hugepage";
	out_str("thp ");
	out_file_line("/sys/kernel/mm/transparent_hugepage/enabled");
	out_c('\n');
	out_str("thp_zero ");
	out_file_line("/sys/kernel/mm/transparent_hugepage/use_zero_page");
	out_c('\n');

	int dfd = open(thp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		for (;;) {
			long n = syscall(SYS_getdents64, dfd, direntbuf, sizeof direntbuf);
			if (n <= 0)
				break;
			for (long off = 0; off < n;) {
				struct ptl_dirent64 *d = (struct ptl_dirent64 *)(direntbuf + off);
				off += d->d_reclen;
				const char *nm = d->d_name;
				if (strncmp(nm, "hugepages-", 10) != 0)
					continue;
				unsigned long long kb = 0;
				const char *q = nm + 10;
				while (*q >= '0' && *q <= '9')
					kb = kb * 10 + (unsigned)(*q++ - '0');
				size_t pl = sizeof thp_dir - 1;
				size_t nl = strlen(nm);
				if (pl + 1 + nl + 9 >= sizeof pathbuf)
					continue;
				memcpy(pathbuf, thp_dir, pl);
				pathbuf[pl] = '/';
				memcpy(pathbuf + pl + 1, nm, nl);
				memcpy(pathbuf + pl + 1 + nl, "/enabled", 9);
				if (access(pathbuf, R_OK) != 0)
					continue;
				out_str("mthp ");
				out_u(kb);
				out_c(' ');
				out_file_line(pathbuf);
				out_c('\n');
			}
		}
		close(dfd);
	}
	out_str("pt_reclaim unknown\n");
	struct utsname u;
	if (uname(&u) == 0) {
		out_str("kernel ");
		out_str(u.release);
		out_c('\n');
	}
	out_str("page_size ");
	out_u((unsigned long long)sysconf(_SC_PAGESIZE));
	out_c('\n');
	/* x86: the kernel clears the la57 CPU flag when it runs with 4 levels */
	ssize_t n = read_small("/proc/cpuinfo", smallbuf, sizeof smallbuf);
	if (n > 0) {
		int la57 = memmem(smallbuf, (size_t)n, " la57 ", 6) != NULL ||
			   memmem(smallbuf, (size_t)n, " la57\n", 6) != NULL;
		out_str(la57 ? "levels 5\n" : "levels 4\n");
	}
	static cpu_set_t cs;
	if (sched_getaffinity(0, sizeof cs, &cs) == 0) {
		out_str("cpus ");
		out_u((unsigned long long)CPU_COUNT(&cs));
		out_c('\n');
	}
	out_str(".");
	out_end();
}

/* ---------------------------------------------------------------- fork plumbing */

/* the calling process just became slot `slot` (a fresh child) */
static void become_child(int slot)
{
	is_root = 0;
	my_slot = slot;
	out_fd = reply_wr;
	outlen = 0;
	inlen = 0;
	for (int i = 0; i < MAX_SLOTS; i++) {
		if (slot_wr[i] >= 0) {
			close(slot_wr[i]);
			slot_wr[i] = -1;
		}
		if (slot_pidfd[i] >= 0) {
			close(slot_pidfd[i]);
			slot_pidfd[i] = -1;
		}
		slot_pid[i] = 0;
	}
	if (reply_rd >= 0) {
		close(reply_rd);
		reply_rd = -1;
	}
	/* only the root talks to the driver */
	if (fcntl(0, F_GETFD) >= 0)
		close(0);
	if (fcntl(1, F_GETFD) >= 0)
		close(1);
	repopulate_own();
}

/* ---------------------------------------------------------------- commands */

static int is_internal_fd(int fd)
{
	if (fd <= 2 || fd == reply_rd || fd == reply_wr)
		return 1;
	for (int i = 0; i < MAX_SLOTS; i++)
		if (fd == slot_rd[i] || fd == slot_wr[i] || fd == slot_pidfd[i])
			return 1;
	return 0;
}

/*
 * Execute one command in the calling process (root for slot 0, or the slot
 * process itself). The slot number has already been consumed from *pp.
 * Returns 1 if the process just became a forked child (caller must switch to
 * serving its new slot), 0 otherwise.
 */
static int exec_cmd(char cmd, char *p)
{
	unsigned long long v[6];
	switch (cmd) {
	case 'M': {
		long long fd, off;
		if (parse_args(&p, v, 4) || parse_i64(next_tok(&p), &fd) ||
		    parse_i64(next_tok(&p), &off) || v[1] > 7) {
			reply_err(EINVAL, "usage: M len prot flags addr fd offset");
			break;
		}
		void *r = mmap((void *)(uintptr_t)v[3], v[0], (int)v[1], (int)v[2], (int)fd,
			       (off_t)off);
		if (r == MAP_FAILED)
			reply_err(errno, "mmap failed");
		else
			reply_addr((uintptr_t)r);
		break;
	}
	case 'F': {
		/* path may contain spaces: the size is the last token */
		while (*p == ' ')
			p++;
		char *last = strrchr(p, ' ');
		unsigned long long size;
		if (!last || parse_u64(last + 1, &size)) {
			reply_err(EINVAL, "usage: F path size");
			break;
		}
		while (last > p && last[-1] == ' ')
			last--;
		*last = 0;
		int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			reply_err(errno, "open failed");
			break;
		}
		struct stat st;
		if (fstat(fd, &st) == 0 && (unsigned long long)st.st_size < size &&
		    ftruncate(fd, (off_t)size) != 0) {
			int e = errno;
			close(fd);
			reply_err(e, "ftruncate failed");
			break;
		}
		out_str("D ");
		out_u((unsigned long long)fd);
		out_end();
		break;
	}
	case 'R':
		if (parse_args(&p, v, 1) || v[0] > 0x7fffffff) {
			reply_err(EINVAL, "usage: R fd");
			break;
		}
		if (is_internal_fd((int)v[0])) {
			reply_err(EBADF, "close: fd belongs to the helper");
			break;
		}
		if (close((int)v[0]) != 0)
			reply_err(errno, "close failed");
		else
			reply_ok();
		break;
	case 'U':
		if (parse_args(&p, v, 2)) {
			reply_err(EINVAL, "usage: U addr len");
			break;
		}
		if (munmap((void *)(uintptr_t)v[0], v[1]) != 0)
			reply_err(errno, "munmap failed");
		else
			reply_ok();
		break;
	case 'P':
		if (parse_args(&p, v, 3) || v[2] > 7) {
			reply_err(EINVAL, "usage: P addr len prot");
			break;
		}
		if (mprotect((void *)(uintptr_t)v[0], v[1], (int)v[2]) != 0)
			reply_err(errno, "mprotect failed");
		else
			reply_ok();
		break;
	case 'V':
		if (parse_args(&p, v, 3)) {
			reply_err(EINVAL, "usage: V addr len advice");
			break;
		}
		if (madvise((void *)(uintptr_t)v[0], v[1], (int)v[2]) != 0)
			reply_err(errno, "madvise failed");
		else
			reply_ok();
		break;
	case 'Q': {
		if (parse_args(&p, v, 4)) {
			reply_err(EINVAL, "usage: Q addr oldlen newlen flags [newaddr]");
			break;
		}
		unsigned long long na = 0;
		char *t = next_tok(&p);
		if (t && parse_u64(t, &na)) {
			reply_err(EINVAL, "usage: Q addr oldlen newlen flags [newaddr]");
			break;
		}
		long r = syscall(SYS_mremap, (unsigned long)v[0], (unsigned long)v[1],
				 (unsigned long)v[2], (unsigned long)v[3], (unsigned long)na);
		if (r == -1)
			reply_err(errno, "mremap failed");
		else
			reply_addr((unsigned long)r);
		break;
	}
	case 'B': {
		long long d;
		if (parse_i64(next_tok(&p), &d)) {
			reply_err(EINVAL, "usage: B delta");
			break;
		}
		unsigned long cur = (unsigned long)syscall(SYS_brk, 0UL);
		if (d == 0) {
			reply_addr(cur);
			break;
		}
		unsigned long want = cur + (unsigned long)d;
		unsigned long got = (unsigned long)syscall(SYS_brk, want);
		if (got != want)
			reply_err(ENOMEM, "brk failed");
		else
			reply_addr(got);
		break;
	}
	case 'T':
		if (parse_args(&p, v, 4) || v[3] > 1) {
			reply_err(EINVAL, "usage: T addr len stride w");
			break;
		}
		do_touch(v[0], v[1], v[2], (int)v[3]);
		break;
	case 'K': {
		if (parse_args(&p, v, 1) || v[0] == 0 || v[0] >= MAX_SLOTS) {
			reply_err(EINVAL, "usage: K newslot (1..31)");
			break;
		}
		pid_t pid = fork();
		if (pid < 0) {
			reply_err(errno, "fork failed");
			break;
		}
		if (pid == 0) {
			become_child((int)v[0]);
			out_str("C ");
			out_u((unsigned long long)getpid());
			out_end();
			return 1;
		}
		/* parent: the child replies */
		break;
	}
	case 'X':
		if (!is_root)
			_exit(0);
		break; /* root exit is handled by the dispatcher */
	case 'S':
		do_stats();
		break;
	case 'Z':
		do_snapshot();
		break;
	case 'G':
		if (parse_args(&p, v, 2)) {
			reply_err(EINVAL, "usage: G addr npages");
			break;
		}
		do_pages(v[0], v[1]);
		break;
	case 'E':
		do_env();
		break;
	default:
		reply_err(EINVAL, "unknown command");
	}
	return 0;
}

/* split "k C rest" into slot and command; returns 0 on success */
static int split_cmd(char *line, int *slot, char *cmd, char **rest)
{
	char *p = line;
	unsigned long long k;
	char *t = next_tok(&p);
	if (parse_u64(t, &k) || k >= MAX_SLOTS)
		return -1;
	t = next_tok(&p);
	if (!t || t[1] != 0)
		return -1;
	*slot = (int)k;
	*cmd = t[0];
	*rest = p;
	return 0;
}

/* ---------------------------------------------------------------- root */

static void root_shutdown(void)
{
	for (int i = 1; i < MAX_SLOTS; i++)
		if (slot_pid[i] > 0)
			kill(slot_pid[i], SIGKILL);
	for (int i = 1; i < MAX_SLOTS; i++) {
		if (slot_pid[i] > 0 && slot_pidfd[i] >= 0) {
			struct pollfd pf = {.fd = slot_pidfd[i], .events = POLLIN};
			poll(&pf, 1, 2000);
		}
	}
}

static void slot_clear(int k)
{
	if (slot_pidfd[k] >= 0)
		close(slot_pidfd[k]);
	slot_pidfd[k] = -1;
	slot_pid[k] = 0;
}

/*
 * Relay one reply from the reply pipe to stdout. `block`: the reply is a
 * block ending with "." (or a single "E ..." line). `watch`: slot whose
 * death aborts the wait (-1: none). The first line is captured in capbuf.
 * Returns 0 on success, -1 if the watched process died first.
 */
static int relay_reply(int block, int watch_pidfd)
{
	size_t lpos = 0;
	char lfirst = 0, lsecond = 0;
	int first_line = 1, sent_any = 0;
	caplen = 0;
	for (;;) {
		struct pollfd pf[2] = {{.fd = reply_rd, .events = POLLIN},
				       {.fd = watch_pidfd, .events = POLLIN}};
		int np = watch_pidfd >= 0 ? 2 : 1;
		int r = poll(pf, (nfds_t)np, -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (!(pf[0].revents & POLLIN)) {
			if (np == 2 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
				if (sent_any && lpos)
					write_all(1, "\n", 1);
				write_all(1, "E ECHILD slot process died\n", 27);
				return -1;
			}
			continue;
		}
		ssize_t n = read(reply_rd, relaybuf, sizeof relaybuf);
		if (n <= 0)
			continue;
		size_t upto = (size_t)n;
		int done = 0;
		for (size_t i = 0; i < (size_t)n; i++) {
			char c = relaybuf[i];
			if (first_line && caplen < sizeof capbuf - 1 && c != '\n')
				capbuf[caplen++] = c;
			if (c == '\n') {
				int end = !block || (lpos == 1 && lfirst == '.') ||
					  (lfirst == 'E' && lsecond == ' ');
				first_line = 0;
				lpos = 0;
				lfirst = lsecond = 0;
				if (end) {
					upto = i + 1;
					done = 1;
					break;
				}
				continue;
			}
			if (lpos == 0)
				lfirst = c;
			else if (lpos == 1)
				lsecond = c;
			lpos++;
		}
		write_all(1, relaybuf, upto);
		sent_any = 1;
		if (done) {
			capbuf[caplen] = 0;
			return 0;
		}
	}
}

/* root: handle one stdin line. Returns 1 if the root became a forked child. */
static int root_handle(char *line)
{
	size_t len = strlen(line);
	int slot;
	char cmd;
	char *rest;
	out_fd = 1;
	if (len > MAX_LINE) {
		reply_err(EINVAL, "line too long");
		return 0;
	}
	memcpy(fwdbuf, line, len);
	fwdbuf[len] = '\n';
	if (split_cmd(line, &slot, &cmd, &rest)) {
		reply_err(EINVAL, "expected: slot command args...");
		return 0;
	}
	if (cmd == 'K') {
		/* validate the target slot here: only the root knows which are used */
		char tmp[32];
		size_t rl = strlen(rest);
		if (rl >= sizeof tmp) {
			reply_err(EINVAL, "usage: K newslot (1..31)");
			return 0;
		}
		memcpy(tmp, rest, rl + 1);
		char *tp = tmp;
		unsigned long long ns;
		if (parse_u64(next_tok(&tp), &ns) || ns == 0 || ns >= MAX_SLOTS) {
			reply_err(EINVAL, "usage: K newslot (1..31)");
			return 0;
		}
		if (slot_pid[ns]) {
			reply_err(EBUSY, "fork: target slot in use");
			return 0;
		}
		if (slot != 0 && !slot_pid[slot]) {
			reply_err(ESRCH, "no such slot");
			return 0;
		}
		pid_t child = 0;
		int watch;
		if (slot == 0) {
			child = fork();
			if (child < 0) {
				reply_err(errno, "fork failed");
				return 0;
			}
			if (child == 0) {
				become_child((int)ns);
				out_str("C ");
				out_u((unsigned long long)getpid());
				out_end();
				return 1;
			}
			watch = (int)syscall(SYS_pidfd_open, child, 0);
		} else {
			write_all(slot_wr[slot], fwdbuf, len + 1);
			watch = slot_pidfd[slot];
		}
		if (relay_reply(0, watch) < 0) {
			if (slot == 0) {
				if (watch >= 0)
					close(watch);
			} else {
				slot_clear(slot);
			}
			return 0;
		}
		if (slot != 0) {
			/* learn the child's pid from the "C <pid>" reply */
			unsigned long long pid;
			char *cp = capbuf;
			char *t = next_tok(&cp);
			if (!t || strcmp(t, "C") != 0 || parse_u64(next_tok(&cp), &pid))
				return 0; /* an E reply: fork failed */
			child = (pid_t)pid;
			watch = (int)syscall(SYS_pidfd_open, child, 0);
		}
		slot_pid[ns] = child;
		slot_pidfd[ns] = watch;
		return 0;
	}
	if (slot == 0) {
		if (cmd == 'X') {
			root_shutdown();
			reply_ok();
			_exit(0);
		}
		return exec_cmd(cmd, rest);
	}
	if (!slot_pid[slot]) {
		reply_err(ESRCH, "no such slot");
		return 0;
	}
	if (cmd == 'X') {
		write_all(slot_wr[slot], fwdbuf, len + 1);
		if (slot_pidfd[slot] >= 0) {
			struct pollfd pf = {.fd = slot_pidfd[slot], .events = POLLIN};
			while (poll(&pf, 1, -1) < 0 && errno == EINTR)
				;
		}
		slot_clear(slot);
		reply_ok();
		return 0;
	}
	write_all(slot_wr[slot], fwdbuf, len + 1);
	if (relay_reply(cmd == 'Z' || cmd == 'E' || cmd == 'G', slot_pidfd[slot]) < 0)
		slot_clear(slot);
	return 0;
}

/* read lines from fd into inbuf, calling handler for each; returns on EOF
 * (0) or when the handler returns nonzero (1). */
static int serve_fd(int fd, int (*handler)(char *line))
{
	for (;;) {
		char *nl;
		while ((nl = memchr(inbuf, '\n', inlen)) != NULL) {
			*nl = 0;
			size_t used = (size_t)(nl - inbuf) + 1;
			if (nl > inbuf && nl[-1] == '\r')
				nl[-1] = 0;
			int r = 0;
			if (inbuf[0])
				r = handler(inbuf);
			if (r) /* became a child: the buffer belongs to the parent */
				return 1;
			memmove(inbuf, inbuf + used, inlen - used);
			inlen -= used;
		}
		if (inlen == sizeof inbuf) /* overlong line: drop it */
			inlen = 0;
		ssize_t n = read(fd, inbuf + inlen, sizeof inbuf - inlen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (n == 0)
			return 0;
		inlen += (size_t)n;
	}
}

static int slot_handle(char *line)
{
	int slot;
	char cmd;
	char *rest;
	if (split_cmd(line, &slot, &cmd, &rest)) {
		reply_err(EINVAL, "expected: slot command args...");
		return 0;
	}
	return exec_cmd(cmd, rest);
}

static void serve_slot(void)
{
	for (;;) {
		if (!serve_fd(slot_rd[my_slot], slot_handle))
			_exit(0); /* EOF: the root is gone */
		/* became a child of this slot process: serve the new slot */
	}
}

/* ---------------------------------------------------------------- bench */

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void bench_touch(volatile unsigned char *p, size_t npages)
{
	for (size_t i = 0; i < npages; i++)
		p[i * PAGE] = 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void out_fixed3(double v)
{
	if (v < 0)
		v = 0;
	unsigned long long m = (unsigned long long)(v * 1000.0 + 0.5);
	out_u(m / 1000);
	out_c('.');
	unsigned long long f = m % 1000;
	out_c((char)('0' + f / 100));
	out_c((char)('0' + f / 10 % 10));
	out_c((char)('0' + f % 10));
}

#define NB 6
#define MAX_REPS 1000
static double bench_res[NB][MAX_REPS];

static int bench_main(const char *bytes_s, const char *reps_s)
{
	static const char *names[NB] = {"fault",     "mprotect_ro", "mprotect_rw",
					"fork_exit", "dontneed",    "munmap"};
	unsigned long long bytes, reps;
	out_fd = 1;
	if (parse_u64(bytes_s, &bytes) || parse_u64(reps_s, &reps) || bytes < PAGE ||
	    reps == 0 || reps > MAX_REPS) {
		out_str("usage: ptlab-host bench BYTES REPS (REPS 1..1000)");
		out_end();
		return 2;
	}
	signal(SIGCHLD, SIG_DFL);
	size_t npages = bytes / PAGE;
	size_t len = npages * PAGE;
	for (unsigned long long r = 0; r < reps; r++) {
		unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			reply_err(errno, "bench: mmap failed");
			return 1;
		}
		madvise(p, len, MADV_NOHUGEPAGE);
		double t0 = now_ns();
		bench_touch(p, npages);
		double t1 = now_ns();
		bench_res[0][r] = t1 - t0;

		t0 = now_ns();
		mprotect(p, len, PROT_READ);
		t1 = now_ns();
		bench_res[1][r] = t1 - t0;

		t0 = now_ns();
		mprotect(p, len, PROT_READ | PROT_WRITE);
		t1 = now_ns();
		bench_res[2][r] = t1 - t0;

		t0 = now_ns();
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		if (pid > 0)
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		t1 = now_ns();
		bench_res[3][r] = t1 - t0;

		bench_touch(p, npages);
		t0 = now_ns();
		madvise(p, len, MADV_DONTNEED);
		t1 = now_ns();
		bench_res[4][r] = t1 - t0;

		bench_touch(p, npages);
		t0 = now_ns();
		munmap(p, len);
		t1 = now_ns();
		bench_res[5][r] = t1 - t0;
	}
	for (int i = 0; i < NB; i++) {
		qsort(bench_res[i], reps, sizeof(double), cmp_double);
		double med = reps % 2 ? bench_res[i][reps / 2]
				      : (bench_res[i][reps / 2 - 1] + bench_res[i][reps / 2]) / 2;
		out_str("bench ");
		out_str(names[i]);
		out_c(' ');
		out_fixed3(med / (double)npages);
		out_c('\n');
	}
	out_flush();
	return 0;
}

/*
 * The actors' bench: per page, MADV_COLLAPSE of written 4 KiB pages into
 * THPs (a PMD-aligned mapping, THPs not faulted in), and when SWAP is 1,
 * MADV_PAGEOUT of written pages to swap and the write faults that bring
 * them back. Prints "bench collapse N", "bench pageout N", "bench swapin N"
 * (ns per page, median), or "bench pageout -" when a call failed.
 */
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define NBA 3
static double bench_act[NBA][MAX_REPS];

static int bench_actors_main(const char *bytes_s, const char *reps_s, const char *swap_s)
{
	static const char *names[NBA] = {"collapse", "pageout", "swapin"};
	const size_t pmd = 2UL << 20;
	unsigned long long bytes, reps, swap;
	int failed[NBA] = {0, 0, 0};
	out_fd = 1;
	if (parse_u64(bytes_s, &bytes) || parse_u64(reps_s, &reps) || parse_u64(swap_s, &swap) ||
	    bytes < pmd || reps == 0 || reps > MAX_REPS || swap > 1) {
		out_str("usage: ptlab-host bench-actors BYTES REPS SWAP (BYTES >= 2 MiB, REPS 1..1000, SWAP 0|1)");
		out_end();
		return 2;
	}
	size_t len = bytes / pmd * pmd;
	size_t npages = len / PAGE;
	for (unsigned long long r = 0; r < reps; r++) {
		/* PMD-aligned: map one PMD more and trim */
		unsigned char *raw = mmap(NULL, len + pmd, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (raw == MAP_FAILED) {
			reply_err(errno, "bench-actors: mmap failed");
			return 1;
		}
		unsigned char *p = (unsigned char *)(((uintptr_t)raw + pmd - 1) & ~(uintptr_t)(pmd - 1));
		if (p > raw)
			munmap(raw, (size_t)(p - raw));
		if (p + len < raw + len + pmd)
			munmap(p + len, (size_t)(raw + len + pmd - (p + len)));
		bench_touch(p, npages);
		double t0 = now_ns();
		if (madvise(p, len, MADV_COLLAPSE) != 0)
			failed[0] = 1;
		double t1 = now_ns();
		bench_act[0][r] = t1 - t0;
		munmap(p, len);
		if (!swap)
			continue;
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			reply_err(errno, "bench-actors: mmap failed");
			return 1;
		}
		madvise(p, len, MADV_NOHUGEPAGE);
		bench_touch(p, npages);
		t0 = now_ns();
		if (madvise(p, len, MADV_PAGEOUT) != 0)
			failed[1] = 1;
		t1 = now_ns();
		bench_act[1][r] = t1 - t0;
		t0 = now_ns();
		bench_touch(p, npages);
		t1 = now_ns();
		bench_act[2][r] = t1 - t0;
		munmap(p, len);
	}
	for (int i = 0; i < NBA; i++) {
		if (i > 0 && !swap)
			continue;
		out_str("bench ");
		out_str(names[i]);
		out_c(' ');
		if (failed[i]) {
			out_c('-');
		} else {
			qsort(bench_act[i], reps, sizeof(double), cmp_double);
			double med = reps % 2 ? bench_act[i][reps / 2]
					      : (bench_act[i][reps / 2 - 1] + bench_act[i][reps / 2]) / 2;
			out_fixed3(med / (double)npages);
		}
		out_c('\n');
	}
	out_flush();
	return 0;
}

/*
 * `ptlab-host calib OP MODE BYTES REPS`: one benchmark of `ptlab calibrate`,
 * the median ns per page of one operation over BYTES of private anonymous
 * memory (a fresh mapping each rep, PMD-aligned). MODE 4k: MADV_NOHUGEPAGE;
 * thp: MADV_HUGEPAGE. OP and what is timed (the set-up before it is not):
 *   fault        a store to each page of the empty mapping
 *   read         a load of each page (the zero page, or the huge zero page)
 *   mprotect_ro  mprotect(PROT_READ) of the written mapping
 *   mprotect_rw  mprotect(PROT_READ|PROT_WRITE) after that
 *   dontneed     MADV_DONTNEED of the written mapping
 *   free         MADV_FREE of the written mapping
 *   pageout      MADV_PAGEOUT of the written mapping (needs swap)
 *   swapin       a store to each page after that MADV_PAGEOUT
 *   fork_exit    fork() of the written mapping, the child's _exit(), waitpid()
 *   munmap       munmap() of the written mapping
 * Prints "calib OP MODE N" (ns per page), or "calib OP MODE -" when a call
 * failed (no swap for pageout, say).
 */
static double calib_res[MAX_REPS];

static unsigned char *calib_map(size_t len, size_t pmd)
{
	unsigned char *raw = mmap(NULL, len + pmd, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	unsigned char *p = (unsigned char *)(((uintptr_t)raw + pmd - 1) & ~(uintptr_t)(pmd - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (p + len < raw + len + pmd)
		munmap(p + len, (size_t)(raw + len + pmd - (p + len)));
	return p;
}

static int calib_main(const char *op, const char *mode, const char *bytes_s, const char *reps_s)
{
	static const char *ops[] = {"fault", "read", "mprotect_ro", "mprotect_rw", "dontneed", "free",
				    "pageout", "swapin", "fork_exit", "munmap"};
	const size_t pmd = 2UL << 20;
	unsigned long long bytes, reps;
	int k = -1, thp;
	out_fd = 1;
	for (int i = 0; i < (int)(sizeof ops / sizeof ops[0]); i++)
		if (strcmp(op, ops[i]) == 0)
			k = i;
	thp = strcmp(mode, "thp") == 0;
	if (k < 0 || (!thp && strcmp(mode, "4k") != 0) || parse_u64(bytes_s, &bytes) ||
	    parse_u64(reps_s, &reps) || bytes < pmd || bytes % pmd != 0 || reps == 0 || reps > MAX_REPS) {
		out_str("usage: ptlab-host calib OP 4k|thp BYTES REPS (OP: fault read mprotect_ro mprotect_rw dontneed free pageout swapin fork_exit munmap; BYTES a multiple of 2 MiB; REPS 1..1000)");
		out_end();
		return 2;
	}
	signal(SIGCHLD, SIG_DFL);
	size_t len = (size_t)bytes;
	size_t npages = len / PAGE;
	int failed = 0;
	for (unsigned long long r = 0; r < reps; r++) {
		unsigned char *p = calib_map(len, pmd);
		if (p == NULL) {
			reply_err(errno, "calib: mmap failed");
			return 1;
		}
		madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		if (k != 0 && k != 1)
			bench_touch(p, npages);
		if (k == 3)
			mprotect(p, len, PROT_READ);
		if (k == 7 && madvise(p, len, MADV_PAGEOUT) != 0)
			failed = 1;
		double t0 = now_ns();
		switch (k) {
		case 0:
		case 7:
			bench_touch(p, npages);
			break;
		case 1:
			for (size_t i = 0; i < npages; i++)
				(void)*(volatile unsigned char *)(p + i * PAGE);
			break;
		case 2:
			failed |= mprotect(p, len, PROT_READ) != 0;
			break;
		case 3:
			failed |= mprotect(p, len, PROT_READ | PROT_WRITE) != 0;
			break;
		case 4:
			failed |= madvise(p, len, MADV_DONTNEED) != 0;
			break;
		case 5:
			failed |= madvise(p, len, MADV_FREE) != 0;
			break;
		case 6:
			failed |= madvise(p, len, MADV_PAGEOUT) != 0;
			break;
		case 8: {
			pid_t pid = fork();
			if (pid == 0)
				_exit(0);
			if (pid > 0)
				while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
					;
			else
				failed = 1;
			break;
		}
		case 9:
			munmap(p, len);
			break;
		}
		double t1 = now_ns();
		calib_res[r] = t1 - t0;
		if (k != 9)
			munmap(p, len);
	}
	out_str("calib ");
	out_str(op);
	out_c(' ');
	out_str(mode);
	out_c(' ');
	if (failed) {
		out_c('-');
	} else {
		qsort(calib_res, reps, sizeof(double), cmp_double);
		double med = reps % 2 ? calib_res[reps / 2] : (calib_res[reps / 2 - 1] + calib_res[reps / 2]) / 2;
		out_fixed3(med / (double)npages);
	}
	out_c('\n');
	out_flush();
	return 0;
}

/* ---------------------------------------------------------------- probe */

/*
 * `ptlab-host probe`: behaviour checks that need scratch mappings, run in a
 * separate process so that protocol sessions stay unperturbed.
 *   zero_page 0|1       a read fault on private anon memory maps the zero page
 *   huge_zero_page 0|1|-  same in a MADV_HUGEPAGE 2 MiB block (- if THP never)
 *   pt_reclaim 0|1      MADV_DONTNEED of a whole populated PTE table frees it
 */
static unsigned long long self_status_kb(const char *field)
{
	ssize_t n = read_small("/proc/self/status", smallbuf, sizeof smallbuf);
	return n > 0 ? field_kb(smallbuf, (size_t)n, field) : 0;
}

static int probe_main(void)
{
	out_fd = 1;
	const size_t sz = 6 * PMD_SZ / 2; /* 6 MiB */
	unsigned char *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	if (p == MAP_FAILED) {
		reply_err(errno, "probe: mmap failed");
		return 1;
	}
	uintptr_t al = ((uintptr_t)p + PMD_SZ - 1) & ~(PMD_SZ - 1);

	/* zero page: read 64 pages with THP off */
	madvise(p, sz, MADV_NOHUGEPAGE);
	unsigned long long a0 = self_status_kb("RssAnon:");
	for (size_t i = 0; i < 64; i++)
		(void)*(volatile unsigned char *)(al + i * PAGE);
	unsigned long long a1 = self_status_kb("RssAnon:");
	out_str("zero_page ");
	out_c(a1 - a0 < 64 * 4 / 2 ? '1' : '0');
	out_c('\n');

	/* huge zero page: read one byte of a MADV_HUGEPAGE aligned block */
	ssize_t n = read_small("/sys/kernel/mm/transparent_hugepage/enabled", small2,
			       sizeof small2);
	out_str("huge_zero_page ");
	if (n <= 0 || memmem(small2, (size_t)n, "[never]", 7)) {
		out_c('-');
	} else {
		uintptr_t h = al + PMD_SZ;
		madvise((void *)h, PMD_SZ, MADV_HUGEPAGE);
		a0 = self_status_kb("RssAnon:");
		(void)*(volatile unsigned char *)h;
		a1 = self_status_kb("RssAnon:");
		out_c(a1 - a0 < 64 ? '1' : '0');
	}
	out_c('\n');
	munmap(p, sz);

	/* PT reclaim on MADV_DONTNEED */
	p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		reply_err(errno, "probe: mmap failed");
		return 1;
	}
	madvise(p, sz, MADV_NOHUGEPAGE);
	al = ((uintptr_t)p + PMD_SZ - 1) & ~(PMD_SZ - 1);
	for (size_t i = 0; i < sz; i += PAGE)
		p[i] = 1;
	unsigned long long t0 = self_status_kb("VmPTE:");
	madvise((void *)al, PMD_SZ, MADV_DONTNEED);
	unsigned long long t1 = self_status_kb("VmPTE:");
	out_str("pt_reclaim ");
	out_c(t0 >= t1 + 4 ? '1' : '0');
	out_c('\n');
	munmap(p, sz);
	out_flush();
	return 0;
}

/* ---------------------------------------------------------------- swap device */

/*
 * `ptlab-host mkswap DEV`: a version-1 swap header (what mkswap(8) writes:
 * magic "SWAPSPACE2" at the end of the first page, last_page = pages - 1,
 * no bad pages) so that every page but the header is usable; `swapon DEV`
 * and `swapoff DEV` are the system calls. For `ptlab diff-kernel
 * --setup-swap`, which needs no util-linux this way.
 */
#ifndef BLKGETSIZE64
#define BLKGETSIZE64 _IOR(0x12, 114, size_t)
#endif

static int swap_fail(const char *what, const char *dev)
{
	int e = errno;
	out_fd = 2;
	out_str("ptlab-host: ");
	out_str(what);
	out_c(' ');
	out_str(dev);
	out_str(": ");
	out_str(errname(e));
	out_end();
	return 1;
}

static int mkswap_main(const char *dev)
{
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return swap_fail("mkswap: open", dev);
	unsigned long long bytes = 0;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return swap_fail("mkswap: fstat", dev);
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t b = 0;
		if (ioctl(fd, BLKGETSIZE64, &b) != 0) {
			close(fd);
			return swap_fail("mkswap: BLKGETSIZE64", dev);
		}
		bytes = b;
	} else {
		bytes = (unsigned long long)st.st_size;
	}
	unsigned long long pages = bytes / PAGE;
	if (pages < 10 || pages - 1 > 0xffffffffULL) {
		close(fd);
		errno = EINVAL;
		return swap_fail("mkswap: size", dev);
	}
	static unsigned char hdr[PAGE];
	memset(hdr, 0, sizeof hdr);
	uint32_t version = 1, last_page = (uint32_t)(pages - 1), nbad = 0;
	memcpy(hdr + 1024, &version, 4);
	memcpy(hdr + 1028, &last_page, 4);
	memcpy(hdr + 1032, &nbad, 4);
	memcpy(hdr + PAGE - 10, "SWAPSPACE2", 10);
	if (pwrite(fd, hdr, PAGE, 0) != (ssize_t)PAGE || fsync(fd) != 0) {
		close(fd);
		return swap_fail("mkswap: write", dev);
	}
	close(fd);
	return 0;
}

static int swapctl_main(int on, const char *dev)
{
	long r = on ? syscall(SYS_swapon, dev, 0) : syscall(SYS_swapoff, dev);
	if (r != 0)
		return swap_fail(on ? "swapon" : "swapoff", dev);
	return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "bench") == 0) {
		if (argc != 4) {
			write_all(2, "usage: ptlab-host bench BYTES REPS\n", 35);
			return 2;
		}
		return bench_main(argv[2], argv[3]);
	}
	if (argc >= 2 && strcmp(argv[1], "bench-actors") == 0) {
		if (argc != 5) {
			write_all(2, "usage: ptlab-host bench-actors BYTES REPS SWAP\n", 47);
			return 2;
		}
		return bench_actors_main(argv[2], argv[3], argv[4]);
	}
	if (argc >= 2 && strcmp(argv[1], "calib") == 0) {
		if (argc != 6) {
			write_all(2, "usage: ptlab-host calib OP MODE BYTES REPS\n", 43);
			return 2;
		}
		return calib_main(argv[2], argv[3], argv[4], argv[5]);
	}
	if (argc == 2 && strcmp(argv[1], "probe") == 0)
		return probe_main();
	if (argc == 3 && strcmp(argv[1], "mkswap") == 0)
		return mkswap_main(argv[2]);
	if (argc == 3 && (strcmp(argv[1], "swapon") == 0 || strcmp(argv[1], "swapoff") == 0))
		return swapctl_main(argv[1][5] == 'n', argv[2]);
	if (argc != 1) {
		static const char usage[] =
			"usage: ptlab-host [probe | bench BYTES REPS | bench-actors BYTES REPS SWAP | calib OP MODE BYTES REPS | mkswap DEV | swapon DEV | swapoff DEV]\n";
		write_all(2, usage, sizeof usage - 1);
		return 2;
	}

	for (int i = 0; i < MAX_SLOTS; i++) {
		slot_rd[i] = slot_wr[i] = -1;
		slot_pidfd[i] = -1;
		slot_pid[i] = 0;
	}
	/* pipes first: every process inherits all of them */
	for (int i = 1; i < MAX_SLOTS; i++) {
		int fds[2];
		if (pipe2(fds, O_CLOEXEC) != 0) {
			write_all(2, "ptlab-host: pipe failed\n", 24);
			return 1;
		}
		slot_rd[i] = fds[0];
		slot_wr[i] = fds[1];
	}
	{
		int fds[2];
		if (pipe2(fds, O_CLOEXEC) != 0) {
			write_all(2, "ptlab-host: pipe failed\n", 24);
			return 1;
		}
		reply_rd = fds[0];
		reply_wr = fds[1];
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	signal(SIGCHLD, SIG_IGN); /* children are reaped automatically */
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	/* for testing the pre-6.7 fallback */
	if (getenv("PTLAB_NO_PAGEMAP_SCAN"))
		pagemap_scan_ok = 0;

	/* one CPU for every slot process (see the top of the file) */
	{
		static cpu_set_t one;
		int cpu = sched_getcpu();
		if (cpu >= 0) {
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			sched_setaffinity(0, sizeof one, &one);
		}
	}

	/* warm up every code path that touches memory, then freeze the layout */
	prefault_stack();
	memset(outbuf, 0, sizeof outbuf);
	for_each_map(populate_cb, NULL);

	if (serve_fd(0, root_handle)) {
		/* the root forked and we are the child */
		serve_slot();
	}
	/* stdin EOF: end of session */
	root_shutdown();
	return 0;
}
