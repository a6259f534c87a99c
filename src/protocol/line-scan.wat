;; The DATA framer's vector scan (src/protocol/line-scan.ts says how it is used).
;;
;; A message body is almost all ordinary lines: bytes, then CRLF, then a line that does not start
;; with a dot. The framer has nothing to do there but pass the bytes on. It must stop only at:
;;   - a CR that no LF follows (a lone CR),
;;   - a LF that no CR precedes (a lone LF),
;;   - a dot right after a LF (a line starting with a dot: stuffing, or the terminator).
;; `scan` finds the first such byte sixteen bytes at a time, where searching for CR and LF one line
;; at a time costs two calls from JavaScript per line.
;;
;; Memory is written by JavaScript: the bytes to scan, with one byte before them and one after
;; (see line-scan.ts), and at least 16 bytes of room after that, so that every 16-byte load, and
;; the load one byte further, stays inside the memory. Bytes past `end` may be anything: a hit
;; there is not reported.
;;
;; Regenerate line-scan-wasm.ts after editing: node scripts/wasm.mjs
(module
  (memory (export "memory") 2)

  ;; The offset of the first byte to stop at in [start, end), or end if there is none.
  (func (export "scan") (param $at i32) (param $end i32) (result i32)
    (local $here v128)
    (local $before v128)
    (local $hits i32)
    (block $none
      (loop $block
        (br_if $none (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $here (v128.load align=1 (local.get $at)))
        ;; The same sixteen bytes seen one byte back: byte k of $before is the byte before byte k.
        (local.set $before (v128.load align=1 (i32.sub (local.get $at) (i32.const 1))))
        (local.set $hits
          (i8x16.bitmask
            (v128.or
              (v128.or
                ;; CR, and the byte after it is not LF.
                (v128.andnot
                  (i8x16.eq (local.get $here) (v128.const i8x16 13 13 13 13 13 13 13 13 13 13 13 13 13 13 13 13))
                  (i8x16.eq (v128.load offset=1 align=1 (local.get $at)) (v128.const i8x16 10 10 10 10 10 10 10 10 10 10 10 10 10 10 10 10)))
                ;; LF, and the byte before it is not CR.
                (v128.andnot
                  (i8x16.eq (local.get $here) (v128.const i8x16 10 10 10 10 10 10 10 10 10 10 10 10 10 10 10 10))
                  (i8x16.eq (local.get $before) (v128.const i8x16 13 13 13 13 13 13 13 13 13 13 13 13 13 13 13 13))))
              ;; A dot, and the byte before it is LF.
              (v128.and
                (i8x16.eq (local.get $here) (v128.const i8x16 46 46 46 46 46 46 46 46 46 46 46 46 46 46 46 46))
                (i8x16.eq (local.get $before) (v128.const i8x16 10 10 10 10 10 10 10 10 10 10 10 10 10 10 10 10))))))
        (if (local.get $hits)
          (then
            ;; The lowest set bit is the first hit; one in the bytes past `end` does not count.
            (local.set $at (i32.add (local.get $at) (i32.ctz (local.get $hits))))
            (return (select (local.get $at) (local.get $end) (i32.lt_u (local.get $at) (local.get $end))))))
        (local.set $at (i32.add (local.get $at) (i32.const 16)))
        (br $block)))
    (local.get $end)))
