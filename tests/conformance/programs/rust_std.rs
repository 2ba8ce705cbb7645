// Rust std on WASI: args, environment, files on the input and output directories, buffered stdout,
// float formatting, sorting, clocks and randomness by their properties. Usage: rust_std IN_DIR OUT_DIR [ARGS...]
use std::collections::{BTreeMap, HashMap};
use std::env;
use std::fs;
use std::io::{self, BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(14695981039346656037u64, |h, &b| (h ^ b as u64).wrapping_mul(1099511628211))
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

type Out<'a> = BufWriter<io::StdoutLock<'a>>;

// Several functions rather than one long main: an unoptimised build of one long function needs more
// operand stack than Wasm3 compiles ("compiling function overran its stack height limit").
fn arguments(out: &mut Out, args: &[String]) -> io::Result<()> {
    writeln!(out, "args {:?}", &args[2..])?;
    let vars: BTreeMap<String, String> = env::vars().collect();
    writeln!(out, "vars {:?}", vars)?;
    writeln!(out, "var CONF_GREETING {:?} CONF_MISSING {:?}", env::var("CONF_GREETING").ok(), env::var("CONF_MISSING").ok())
}

fn formatting(out: &mut Out) -> io::Result<()> {
    for v in [0.0f64, -0.0, 0.1, 1.0 / 3.0, 1e21, 1e-7, f64::MAX, f64::MIN_POSITIVE, 5e-324, 2.5, -1234.5678] {
        writeln!(out, "{} {:?} {:.3} {:e} {:10.2}| {:<12.4e}|", v, v, v, v, v, v)?;
    }
    writeln!(out, "{} {} {} {}", f64::INFINITY, f64::NEG_INFINITY, f64::NAN, (2.0f64).sqrt())?;
    writeln!(out, "{} {} {:x} {:#b} {:>8}|{:08.3}", i64::MIN, u64::MAX, 0xdeadbeefu32, 5u8, "right", 3.14159)?;
    writeln!(out, "parsed {:?} {:?}", "0.1".parse::<f64>(), "1e400".parse::<f64>())
}

fn sorting(out: &mut Out) -> io::Result<()> {
    let mut v: Vec<u32> = Vec::new();
    let mut x = 2463534242u32;
    for _ in 0..10000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x % 1000);
    }
    v.sort_unstable();
    let mut by_count: HashMap<u32, u32> = HashMap::new();
    for &e in &v {
        *by_count.entry(e).or_insert(0) += 1;
    }
    let mut counts: Vec<(u32, u32)> = by_count.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    writeln!(out, "sorted min {} max {} median {} top {:?}", v[0], v[v.len() - 1], v[v.len() / 2], &counts[..3])
}

fn files(out: &mut Out, input: &Path, output: &Path) -> io::Result<()> {
    let text = fs::read_to_string(input.join("text.txt"))?;
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    fs::write(output.join("sorted.txt"), lines.join("\n") + "\n")?;
    writeln!(out, "text {} lines, first {:?}", lines.len(), lines.first())?;
    let big = fs::read(input.join("big.bin"))?;
    // Per-byte work is slow in an unoptimised build on Wasm3: hash a slice, copy the rest as a whole.
    writeln!(out, "big {} bytes, fnv of the first 64 KiB {:016x}", big.len(), fnv(&big[..65536]))?;
    let mut reader = io::BufReader::new(fs::File::open(input.join("big.bin"))?);
    let mut chunk = vec![0u8; 100_003];
    let (mut total, mut n) = (0usize, 0usize);
    loop {
        let k = reader.read(&mut chunk)?;
        if k == 0 {
            break;
        }
        total += k;
        n += 1;
    }
    writeln!(out, "big read in chunks: {} bytes, more than one read: {}", total, yes(n > 1))?;
    let mut copy = big.clone();
    for i in (0..copy.len()).step_by(4096) {
        copy[i] = copy[i].wrapping_mul(2);
    }
    fs::write(output.join("copy.bin"), &copy)
}

fn seeking(out: &mut Out, input: &Path, output: &Path) -> io::Result<()> {
    fs::create_dir_all(output.join("sub/dir"))?;
    let mut f = fs::OpenOptions::new().create(true).read(true).write(true).open(output.join("sub/dir/seek.bin"))?;
    f.write_all(b"0123456789")?;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(b"\0\x80\xff")?;
    f.seek(SeekFrom::End(-2))?;
    let mut tail = String::new();
    f.read_to_string(&mut tail)?;
    writeln!(out, "seek tail {:?} len {}", tail, f.metadata()?.len())?;
    let mut names: Vec<String> = fs::read_dir(input)?.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    writeln!(out, "input dir {:?}", names)?;
    writeln!(out, "missing file error kind {:?}", fs::read(input.join("nope")).unwrap_err().kind())?;
    let stdin_lines = io::stdin().lock().lines().count();
    writeln!(out, "stdin lines {}", stdin_lines)
}

fn time_and_randomness(out: &mut Out) -> io::Result<()> {
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(15));
    let slept = start.elapsed();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    writeln!(out, "slept >= 15 ms: {}, < 2 s: {}", yes(slept >= Duration::from_millis(15)), yes(slept < Duration::from_secs(2)))?;
    writeln!(out, "system time after 2024: {}", yes(now.as_secs() > 1_704_067_200))?;
    let a = std::collections::hash_map::RandomState::new();
    let b = std::collections::hash_map::RandomState::new();
    use std::hash::{BuildHasher, Hash, Hasher};
    let (mut ha, mut hb) = (a.build_hasher(), b.build_hasher());
    42u32.hash(&mut ha);
    42u32.hash(&mut hb);
    writeln!(out, "random hash keys differ: {}", yes(ha.finish() != hb.finish()))
}

fn main() -> io::Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: rust_std IN_DIR OUT_DIR [ARGS...]");
        std::process::exit(2);
    }
    let (input, output) = (Path::new(&args[0]), Path::new(&args[1]));
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    arguments(&mut out, &args)?;
    formatting(&mut out)?;
    sorting(&mut out)?;
    files(&mut out, input, output)?;
    seeking(&mut out, input, output)?;
    time_and_randomness(&mut out)?;
    for i in 0..20000u32 {
        out.write_all(&[(i % 251) as u8, 0, 0x80 | (i % 128) as u8])?;
    }
    writeln!(out)?;
    out.flush()?;
    eprintln!("rust_std: done");
    Ok(())
}
