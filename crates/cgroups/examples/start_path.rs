//! Times the container start path of this crate (resolve, create, apply with no
//! resources, add_process, destroy) so its cost can be checked with strace or perf.
//! Usage (root): cargo run -p berth-cgroups --example start_path [iterations]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let empty = oci_spec::runtime::LinuxResources::default();
    let mut total = std::time::Duration::ZERO;
    for i in 0..n {
        let mut child = std::process::Command::new("sleep").arg("5").spawn()?;
        let id = format!("berth-start-path-{}-{i}", std::process::id());
        let t = Instant::now();
        let cg = berth_cgroups::Cgroup::resolve(None, &id)?;
        cg.create()?;
        cg.apply(&empty)?;
        cg.add_process(child.id() as i32)?;
        let added = t.elapsed();
        child.kill()?;
        child.wait()?;
        let t2 = Instant::now();
        cg.destroy()?;
        let removed = t2.elapsed();
        total += added + removed;
        println!("{id}: create+apply+add {added:?}, destroy {removed:?}");
    }
    println!("mean {:?}", total / n.max(1));
    Ok(())
}
