//! `fovea_nn::malloc::tune` keeps freed memory for reuse: a process of its own (this test
//! file), since malloc settings are process-wide.

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    ru.ru_minflt
}

/// One "step" as libtorch's allocations look to malloc: three 24 MiB blocks written,
/// then freed (72 MiB given back at the top of the heap, more than glibc's default trim
/// threshold, so by default the next step faults on every page again).
fn step() -> u64 {
    let blocks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 24 << 20]).collect();
    blocks.iter().map(|b| u64::from(b[b.len() / 2])).sum()
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tuned_malloc_reuses_freed_blocks_instead_of_faulting_on_fresh_pages() {
    // This test sets nothing of its own; any of the user's settings turns tune off.
    let users = fovea_nn::malloc::USER_SETTINGS;
    if let Some(v) = users.iter().find(|v| std::env::var_os(v).is_some()) {
        eprintln!("SKIP: {v} is set (tune leaves malloc to the user)");
        return;
    }
    assert!(fovea_nn::malloc::tune());
    assert_eq!(step(), 6);
    let before = minor_faults();
    for _ in 0..5 {
        assert_eq!(step(), 6);
    }
    let faults = minor_faults() - before;
    // With glibc's defaults (tune left out) this loop took 43,013 faults here.
    assert!(faults < 5_000, "{faults} minor page faults in 5 steps");
}
