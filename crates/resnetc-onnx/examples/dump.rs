fn main() {
    let path = std::env::args().nth(1).expect("path");
    match resnetc_onnx::import_file(std::path::Path::new(&path)) {
        Ok(g) => {
            let info = resnetc_ir::validate(&g).unwrap();
            print!("{}", resnetc_ir::dump(&g, Some(&info)));
        }
        Err(e) => println!("error: {e}"),
    }
}
