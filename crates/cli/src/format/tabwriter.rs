//! Elastic tabstops, a port of Go's `text/tabwriter` (docker's fork, which measures cell
//! width in terminal columns): tab-terminated cells in consecutive lines form a column
//! aligned to its widest cell plus padding.

use unicode_width::UnicodeWidthStr;

#[derive(Debug, Clone, Copy)]
struct Cell {
    /// Byte range of the cell's text in the input.
    start: usize,
    end: usize,
    /// Display width in columns.
    width: usize,
}

/// Aligns `text` into columns with space padding: every column is at least `min_width`
/// wide and `padding` wider than its widest cell. The last cell of each line is not part
/// of any column and is written as is.
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<Cell>> = split_cells(text);
    let mut writer = Writer {
        text,
        lines: &lines,
        min_width,
        padding,
        widths: Vec::new(),
        out: String::with_capacity(text.len() + text.len() / 2),
    };
    writer.format(0, lines.len());
    writer.out
}

fn split_cells(text: &str) -> Vec<Vec<Cell>> {
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        if ch == '\t' || ch == '\n' {
            let cell_text = &text[start..i];
            line.push(Cell {
                start,
                end: i,
                width: cell_text.width(),
            });
            start = i + 1;
            if ch == '\n' {
                lines.push(std::mem::take(&mut line));
            }
        }
    }
    // A trailing partial line keeps its text (written without a newline); an empty one
    // has no cells.
    if start < text.len() {
        line.push(Cell {
            start,
            end: text.len(),
            width: text[start..].width(),
        });
    }
    lines.push(line);
    lines
}

struct Writer<'a> {
    text: &'a str,
    lines: &'a [Vec<Cell>],
    min_width: usize,
    padding: usize,
    widths: Vec<usize>,
    out: String,
}

impl Writer<'_> {
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // A cell exists in this column: print the lines before the block, then find
            // the block's extent and width.
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(self.lines[this][column].width + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            let line = &self.lines[i];
            for (j, cell) in line.iter().enumerate() {
                self.out.push_str(&self.text[cell.start..cell.end]);
                if let Some(&w) = self.widths.get(j) {
                    self.out
                        .extend(std::iter::repeat_n(' ', w.saturating_sub(cell.width)));
                }
            }
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_docker_tables() {
        let text = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n\
                    testimg\tv1\tc13301734603\t2 hours ago\t1.99MB\n";
        assert_eq!(
            align(text, 10, 3),
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             testimg      v1        c13301734603   2 hours ago   1.99MB\n"
        );
    }

    #[test]
    fn last_cell_is_not_padded_and_blocks_end_at_short_lines() {
        let text = "a\tb\nlonger-cell\tc\nno tabs here\nx\ty\n";
        assert_eq!(
            align(text, 0, 1),
            "a           b\nlonger-cell c\nno tabs here\nx y\n"
        );
    }

    #[test]
    fn empty_cells_are_padded_when_inside_a_column() {
        let text = "IMAGE\tCREATED BY\tSIZE\nabc\t\t1MB\n";
        assert_eq!(
            align(text, 10, 3),
            "IMAGE     CREATED BY   SIZE\nabc                    1MB\n"
        );
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let text = "名前\tx\nab\ty\n";
        assert_eq!(align(text, 0, 1), "名前 x\nab   y\n");
    }

    #[test]
    fn trailing_text_without_newline_is_kept() {
        assert_eq!(align("a\tb\nccc\td", 0, 1), "a   b\nccc d");
        assert_eq!(align("", 10, 3), "");
    }
}
