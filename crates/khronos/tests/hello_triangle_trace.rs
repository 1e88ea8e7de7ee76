//! hello_triangle through the recording mock: the KHRN traffic up to the first swap must be
//! the real client's (reference trace), and every later frame one 968-byte message.

mod common;

use common::{CLIENT_ID, Cmd, Item, scene};
use khronos::PidSource;
use khronos::hello_triangle::{Cube, textures};

const EXPECTED: &str = include_str!("data/hello_triangle_to_first_swap.txt");

#[derive(Debug)]
enum Arg {
    U(u32),
    F(f32),
    Any,
}

#[derive(Debug)]
struct ExpCmd {
    id: u32,
    args: Vec<Arg>,
    inline: Option<usize>,
    cache: Option<(u32, Vec<(u32, u32)>)>,
}

#[derive(Debug)]
enum Exp {
    Msg { len: usize, cmds: Vec<ExpCmd> },
    Bulk(usize),
}

fn parse_expected() -> Vec<Exp> {
    let mut out = Vec::new();
    for line in EXPECTED
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut toks = line.split_whitespace();
        let head = toks.next().unwrap();
        match head {
            "MSG" => out.push(Exp::Msg {
                len: toks.next().unwrap().parse().unwrap(),
                cmds: Vec::new(),
            }),
            "BULK" => out.push(Exp::Bulk(toks.next().unwrap().parse().unwrap())),
            id => {
                let mut cmd = ExpCmd {
                    id: u32::from_str_radix(id, 16).unwrap(),
                    args: Vec::new(),
                    inline: None,
                    cache: None,
                };
                let mut rest: Vec<&str> = toks.collect();
                if let Some(bar) = rest.iter().position(|t| *t == "|") {
                    let send_any = rest[bar + 1].parse().unwrap();
                    let entries = rest[bar + 2..]
                        .iter()
                        .map(|e| {
                            let (o, i) = e.split_once(':').unwrap();
                            (o.parse().unwrap(), i.parse().unwrap())
                        })
                        .collect();
                    cmd.cache = Some((send_any, entries));
                    rest.truncate(bar);
                }
                for t in rest {
                    if t == "*" {
                        cmd.args.push(Arg::Any);
                    } else if let Some(n) = t.strip_prefix('+') {
                        cmd.inline = Some(n.parse().unwrap());
                    } else if let Some(x) = t.strip_prefix('f') {
                        cmd.args.push(Arg::F(x.parse().unwrap()));
                    } else {
                        cmd.args.push(Arg::U(t.parse().unwrap()));
                    }
                }
                match out.last_mut() {
                    Some(Exp::Msg { cmds, .. }) => cmds.push(cmd),
                    _ => panic!("command outside a message"),
                }
            }
        }
    }
    out
}

fn check_cmd(at: &str, exp: &ExpCmd, got: &Cmd) {
    assert_eq!(
        got.id, exp.id,
        "{at}: command id 0x{:04x} instead of 0x{:04x}",
        got.id, exp.id
    );
    assert_eq!(got.args.len(), exp.args.len(), "{at}: argument count");
    for (k, (e, g)) in exp.args.iter().zip(&got.args).enumerate() {
        match *e {
            Arg::U(v) => assert_eq!(*g, v, "{at}: argument {k}"),
            Arg::F(v) => {
                let g = f32::from_bits(*g);
                assert!(
                    (g - v).abs() <= 1e-5 * v.abs().max(1.0),
                    "{at}: argument {k} is {g}, expected {v}"
                );
            }
            Arg::Any => {}
        }
    }
    match (exp.id, &exp.cache) {
        (0x703a, _) => assert_eq!(
            Some(got.args[1] as usize),
            exp.inline,
            "{at}: inline length"
        ),
        (0x7018, Some((send_any, entries))) => {
            let w: Vec<u32> = got
                .inline
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(w[0], *send_any, "{at}: send_any");
            assert_eq!(w.len(), 21, "{at}: cache info of 84 bytes");
            let live: Vec<(usize, (u32, u32))> = (0..10)
                .map(|s| (s, (w[1 + 2 * s], w[2 + 2 * s])))
                .filter(|(_, (o, _))| *o != 0xffff_ffff)
                .collect();
            let slots: Vec<usize> = live.iter().map(|(s, _)| *s).collect();
            assert_eq!(slots, [0, 3], "{at}: position and texcoord slots");
            let pairs: Vec<(u32, u32)> = live.iter().map(|(_, p)| *p).collect();
            assert_eq!(&pairs, entries, "{at}: cache entries");
        }
        _ => {}
    }
}

fn compare(expected: &[Exp], got: &[Item]) {
    let images = textures();
    let mut bulks = 0;
    for (n, (e, g)) in expected.iter().zip(got).enumerate() {
        match (e, g) {
            (
                Exp::Msg { len, cmds },
                Item::Msg {
                    len: glen,
                    cmds: gcmds,
                },
            ) => {
                let ids: Vec<String> = gcmds.iter().map(|c| format!("{:04x}", c.id)).collect();
                assert_eq!(
                    cmds.len(),
                    gcmds.len(),
                    "item {n}: command count; got {ids:?}"
                );
                for (k, (ec, gc)) in cmds.iter().zip(gcmds).enumerate() {
                    check_cmd(&format!("item {n} command {k}"), ec, gc);
                }
                assert_eq!(glen, len, "item {n}: message length");
            }
            (Exp::Bulk(len), Item::Bulk(data)) => {
                assert_eq!(data.len(), *len, "item {n}: bulk length");
                assert_eq!(
                    data,
                    &images[bulks / 2],
                    "item {n}: texture {} pixels",
                    bulks + 1
                );
                bulks += 1;
            }
            _ => panic!("item {n}: expected {e:?}, got {g:?}"),
        }
    }
    assert_eq!(got.len(), expected.len(), "number of KHRN items");
}

#[test]
fn first_frame_matches_the_reference_trace() {
    let s = scene(PidSource::ClientId);
    let mut cube = Cube::new(640, 480);
    cube.setup(&s.gl).unwrap();
    assert_eq!(cube.texture_names(), [1, 2, 3, 4, 5, 6]);
    cube.frame(&s.gl, 1).unwrap();
    s.display.swap_buffers(&s.surface).unwrap();

    let expected = parse_expected();
    assert_eq!(expected.len(), 28);
    let log = s.mock.log();
    compare(&expected, &log);

    // The position data of face 0 is the first 16 bytes of quadx.
    let Item::Msg { cmds, .. } = &log[22] else {
        panic!("item 22 is not a message")
    };
    assert_eq!(cmds[2].id, 0x703a);
    assert_eq!(&cmds[2].inline[..6], &[0xf6, 0xf6, 10, 10, 0xf6, 10]);

    // GET_CLIENT_ID at attach, after every flush, for the surface semaphore's name and for
    // the make-current rewrite.
    let messages = log.iter().filter(|i| matches!(i, Item::Msg { .. })).count();
    assert_eq!(messages, 22);
    assert_eq!(s.mock.client_id_calls(), 1 + messages + 1 + 1);
    let st = s.client.stats();
    assert_eq!((st.bulk, st.bulk_bytes, st.swaps), (6, 6 * 49152, 1));
}

#[test]
fn later_frames_are_one_message_each() {
    let s = scene(PidSource::ClientId);
    let mut cube = Cube::new(640, 480);
    cube.setup(&s.gl).unwrap();
    cube.frame(&s.gl, 1).unwrap();
    s.display.swap_buffers(&s.surface).unwrap();
    for k in 2..=3 {
        let before = s.mock.log().len();
        cube.frame(&s.gl, k).unwrap();
        s.display.swap_buffers(&s.surface).unwrap();
        let log = s.mock.log();
        assert_eq!(log.len(), before + 1, "frame {k} is one KHRN item");
        let Item::Msg { len, cmds } = &log[before] else {
            panic!("frame {k} is not a message")
        };
        assert_eq!(*len, 968, "frame {k} length");
        assert_eq!(cmds.len(), 26, "frame {k}: MC + 25 commands");
        assert_eq!(cmds[0].args, [CLIENT_ID, 0, 1, 0x100, 0x200, 0x200, 0, 0]);
        let ids: Vec<u32> = cmds[1..].iter().map(|c| c.id).collect();
        let mut want = vec![0x1036, 0x105f, 0x104e, 0x104e, 0x104e, 0x7006];
        for _ in 0..6 {
            want.extend([0x7003, 0x104e, 0x7018]);
        }
        want.push(0x400a);
        assert_eq!(ids, want);
        let az = f32::from_bits(cmds[5].args[0]);
        assert_eq!(az, if k % 2 == 1 { 360.0 } else { 0.0 });
        assert_eq!(f32::from_bits(cmds[3].args[0]), 45.0 + 0.5 * k as f32);
    }
}
