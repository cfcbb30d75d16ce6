//! What this machine offers to the cluster: logical CPUs, total and available memory
//! (sysinfo) and GPUs (NVIDIA, read from `nvidia-smi` or the driver's /proc files).
//!
//! Measurement lives here; deciding what a Dask worker gets from it does not.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// One GPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// Vendor, e.g. `nvidia`.
    pub vendor: String,
    /// Model name.
    pub model: String,
    /// Device memory in bytes, 0 when unknown.
    pub memory_bytes: u64,
}

/// A node's resources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeResources {
    /// Logical CPUs.
    pub cpus: u32,
    /// Total physical memory, bytes.
    pub memory_total_bytes: u64,
    /// Memory available for new work, bytes.
    pub memory_available_bytes: u64,
    /// GPUs found.
    pub gpus: Vec<Gpu>,
}

impl NodeResources {
    /// Measures this machine. Cheap enough to call every few seconds.
    pub fn probe() -> NodeResources {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        NodeResources {
            cpus,
            memory_total_bytes: sys.total_memory(),
            memory_available_bytes: sys.available_memory(),
            gpus: probe_gpus(),
        }
    }
}

/// NVIDIA GPUs: `nvidia-smi` knows memory sizes; the driver's /proc entries are the
/// fallback when the tool is not installed (headless servers often lack it).
fn probe_gpus() -> Vec<Gpu> {
    let smi = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .output();
    if let Ok(out) = smi
        && out.status.success()
    {
        return parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout));
    }
    let dir = Path::new("/proc/driver/nvidia/gpus");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut gpus: Vec<Gpu> = entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("information")).ok())
        .filter_map(|text| parse_nvidia_proc(&text))
        .collect();
    gpus.sort_by(|a, b| a.model.cmp(&b.model));
    gpus
}

/// Parses `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits` (MiB).
pub fn parse_nvidia_smi(text: &str) -> Vec<Gpu> {
    text.lines()
        .filter_map(|line| {
            let (name, mem) = line.rsplit_once(',')?;
            let name = name.trim();
            if name.is_empty() {
                return None;
            }
            Some(Gpu {
                vendor: "nvidia".to_owned(),
                model: name.to_owned(),
                memory_bytes: mem
                    .trim()
                    .parse::<u64>()
                    .map(|m| m * 1024 * 1024)
                    .unwrap_or(0),
            })
        })
        .collect()
}

/// Parses `/proc/driver/nvidia/gpus/<bus>/information` (`Model:` line; no memory size).
pub fn parse_nvidia_proc(text: &str) -> Option<Gpu> {
    let model = text
        .lines()
        .find_map(|l| l.strip_prefix("Model:"))?
        .trim()
        .to_owned();
    (!model.is_empty()).then(|| Gpu {
        vendor: "nvidia".to_owned(),
        model,
        memory_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_this_machine() {
        let r = NodeResources::probe();
        assert!(r.cpus >= 1);
        assert!(r.memory_total_bytes > 0);
        assert!(r.memory_available_bytes <= r.memory_total_bytes);
    }

    #[test]
    fn nvidia_smi_csv_is_parsed_in_mib() {
        let gpus = parse_nvidia_smi("NVIDIA A100-SXM4-40GB, 40960\nTesla T4, 15360\n\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].model, "NVIDIA A100-SXM4-40GB");
        assert_eq!(gpus[0].memory_bytes, 40960 * 1024 * 1024);
        assert_eq!(gpus[1].model, "Tesla T4");
    }

    #[test]
    fn nvidia_proc_information_gives_model() {
        let text = "Model: \t\t NVIDIA GeForce RTX 3090\nIRQ:   \t\t 130\nGPU UUID: \t GPU-x\n";
        let gpu = parse_nvidia_proc(text).expect("model line");
        assert_eq!(gpu.model, "NVIDIA GeForce RTX 3090");
        assert!(parse_nvidia_proc("IRQ: 1\n").is_none());
    }
}
