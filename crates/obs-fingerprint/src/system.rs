//! Hardware and operating system, read with `sysinfo`, plus GPU names.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};

/// The machine a run trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Hardware {
    /// The CPU's brand string (`"Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"`), not the
    /// architecture; `None` when the platform does not report one.
    pub cpu_model: Option<String>,
    /// Physical cores, when the platform reports them.
    pub physical_cores: Option<u64>,
    /// Logical cores (hardware threads) the OS lists.
    pub logical_cores: u64,
    /// Total RAM in bytes.
    pub ram_bytes: u64,
    /// GPU names, one per device, in device order; empty when there is none.
    pub gpus: Vec<String>,
}

/// The operating system a run trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OsInfo {
    /// OS family: `linux`, `macos`, `windows`, ... (Rust's `std::env::consts::OS`).
    pub family: String,
    /// Distribution or product name (`"Debian GNU/Linux"`, `"Darwin"`, `"Windows"`).
    pub name: Option<String>,
    /// Its version (`"12"`, `"14.5"`, `"11 (26100)"`).
    pub version: Option<String>,
    /// Kernel version (`"6.1.0-18-amd64"`).
    pub kernel: Option<String>,
    /// Machine architecture as the kernel reports it (`"x86_64"`, `"arm64"`).
    pub arch: String,
}

/// Where to look for GPUs.
///
/// The default runs `nvidia-smi` (found on `PATH`) with a 5-second limit, and when that finds
/// nothing reads `/sys/class/drm/card*/device/{vendor,device}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GpuProbe {
    /// The `nvidia-smi` program to run, or `None` to skip it.
    pub nvidia_smi: Option<PathBuf>,
    /// How long `nvidia-smi` may take before it is killed and ignored.
    pub nvidia_smi_timeout: Duration,
    /// The DRM class directory to scan (Linux), or `None` to skip it.
    pub drm_class_dir: Option<PathBuf>,
}

impl Default for GpuProbe {
    fn default() -> Self {
        GpuProbe {
            nvidia_smi: Some(PathBuf::from("nvidia-smi")),
            nvidia_smi_timeout: Duration::from_secs(5),
            drm_class_dir: Some(PathBuf::from("/sys/class/drm")),
        }
    }
}

impl GpuProbe {
    /// A probe that looks nowhere: the fingerprint records no GPU.
    pub fn disabled() -> Self {
        GpuProbe { nvidia_smi: None, drm_class_dir: None, ..GpuProbe::default() }
    }

    /// The GPU names this probe finds; empty when there is none.
    pub fn probe(&self) -> Vec<String> {
        if let Some(program) = &self.nvidia_smi {
            let names = nvidia_smi(program, self.nvidia_smi_timeout);
            if !names.is_empty() {
                return names;
            }
        }
        self.drm_class_dir.as_deref().map(drm_gpus).unwrap_or_default()
    }
}

impl Hardware {
    /// Reads this machine's CPU, cores and RAM, and looks for GPUs with `probe`.
    pub fn capture(probe: &GpuProbe) -> Hardware {
        hardware(probe)
    }
}

impl OsInfo {
    /// Reads this machine's operating system.
    pub fn capture() -> OsInfo {
        os_info()
    }
}

fn hardware(probe: &GpuProbe) -> Hardware {
    let mut sys = System::new();
    // Only the CPU list (which carries the brand) and RAM: no usage sampling, no frequencies,
    // no processes, which keeps a capture within a few milliseconds.
    sys.refresh_cpu_list(CpuRefreshKind::nothing());
    sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
    let cpu_model =
        sys.cpus().first().map(|c| c.brand().trim().to_owned()).filter(|b| !b.is_empty());
    Hardware {
        cpu_model,
        physical_cores: System::physical_core_count().map(|n| n as u64),
        logical_cores: sys.cpus().len() as u64,
        ram_bytes: sys.total_memory(),
        gpus: probe.probe(),
    }
}

fn os_info() -> OsInfo {
    OsInfo {
        family: std::env::consts::OS.to_owned(),
        name: System::name(),
        version: System::os_version(),
        kernel: System::kernel_version(),
        arch: Some(System::cpu_arch())
            .filter(|a| !a.is_empty() && a != "unknown")
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
    }
}

/// GPU names from `nvidia-smi`, or nothing when it is missing, fails or hangs.
fn nvidia_smi(program: &Path, timeout: Duration) -> Vec<String> {
    let child = Command::new(program)
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return Vec::new() };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut out = String::new();
    match (status, child.stdout.take()) {
        (Some(status), Some(mut stdout)) if status.success() => {
            if stdout.read_to_string(&mut out).is_err() {
                return Vec::new();
            }
        }
        _ => return Vec::new(),
    }
    out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// Display devices under a DRM class directory: `cardN` entries only (not their connectors),
/// in card-number order, named by PCI vendor, e.g. `"NVIDIA [10de:2504]"`.
fn drm_gpus(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut cards: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("card")?.parse::<u32>().ok()?;
            Some((n, e.path().join("device")))
        })
        .collect();
    cards.sort_unstable_by_key(|(n, _)| *n);
    cards.into_iter().filter_map(|(_, device)| describe_device(&device)).collect()
}

fn describe_device(device: &Path) -> Option<String> {
    let read_id = |file: &str| {
        let text = fs::read_to_string(device.join(file)).ok()?;
        u16::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
    };
    match read_id("vendor") {
        Some(vendor) => {
            let name = vendor_name(vendor)
                .map_or_else(|| format!("PCI vendor {vendor:04x}"), str::to_owned);
            Some(match read_id("device") {
                Some(dev) => format!("{name} [{vendor:04x}:{dev:04x}]"),
                None => format!("{name} [{vendor:04x}]"),
            })
        }
        // Not a PCI device (an SoC GPU): name it by its kernel driver, if it has one.
        None => fs::read_link(device.join("driver"))
            .ok()
            .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .map(|driver| format!("{driver} (platform GPU)")),
    }
}

/// Names of the PCI vendors that make display devices.
fn vendor_name(id: u16) -> Option<&'static str> {
    Some(match id {
        0x10de => "NVIDIA",
        0x1002 | 0x1022 => "AMD",
        0x8086 => "Intel",
        0x1af4 => "Red Hat virtio",
        0x1234 => "QEMU",
        0x15ad => "VMware",
        0x80ee => "VirtualBox",
        0x1414 => "Microsoft Hyper-V",
        0x1a03 => "ASPEED",
        0x102b => "Matrox",
        0x5143 => "Qualcomm",
        0x13b5 => "ARM",
        0x1ae0 => "Google",
        0x106b => "Apple",
        0x1d17 => "Zhaoxin",
        0x1ed5 => "Moore Threads",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_names_cover_the_big_three() {
        assert_eq!(vendor_name(0x10de), Some("NVIDIA"));
        assert_eq!(vendor_name(0x1002), Some("AMD"));
        assert_eq!(vendor_name(0x8086), Some("Intel"));
        assert_eq!(vendor_name(0xffff), None);
    }

    #[test]
    fn hardware_reads_this_machine() {
        let hw = hardware(&GpuProbe::disabled());
        assert!(hw.logical_cores >= 1);
        assert!(hw.ram_bytes > 0);
        assert!(hw.gpus.is_empty());
        if let Some(model) = &hw.cpu_model {
            // The brand, not the architecture string the reference recorded.
            assert_ne!(model, std::env::consts::ARCH);
        }
        let os = os_info();
        assert_eq!(os.family, std::env::consts::OS);
        assert!(!os.arch.is_empty());
    }
}
