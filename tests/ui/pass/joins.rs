//! Fan-outs and joins that compile: a join behind two steps, nested fan-outs, a `take`, a
//! fan-out of `OneOf` elements, an optional list.
use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Book(u32);

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Chapter(u32);

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Words(u32);

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Counted(u32);

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct BookWords(u32);

#[derive(Debug, OneOf)]
enum Part {
    Book(Book),
    Chapter(Chapter),
}

struct Library;

#[workflow]
impl Library {
    #[step]
    async fn books(&self, _ev: StartEvent) -> Option<Vec<Book>> {
        Some(vec![Book(1), Book(2)])
    }

    #[step]
    async fn chapters(&self, book: Book) -> Result<Vec<Chapter>, String> {
        Ok((0..book.0).map(Chapter).collect())
    }

    #[step]
    async fn words(&self, chapter: Chapter) -> Words {
        Words(chapter.0)
    }

    #[step]
    async fn count(&self, words: Words) -> Counted {
        Counted(words.0)
    }

    #[step]
    async fn per_book(&self, counted: Vec<Counted>) -> BookWords {
        BookWords(counted.iter().map(|c| c.0).sum())
    }

    #[step(take = 1)]
    async fn total(&self, books: Vec<BookWords>) -> StopEvent<u32> {
        StopEvent::new(books.iter().map(|b| b.0).sum())
    }
}

struct Mixed;

#[workflow]
impl Mixed {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Part> {
        vec![Part::Book(Book(1)), Part::Chapter(Chapter(2))]
    }

    #[step]
    async fn join(&self, parts: Vec<Part>) -> StopEvent<usize> {
        StopEvent::new(parts.len())
    }
}

/// `catch` names a renamed step by its name, as a string.
struct Renamed;

#[workflow]
impl Renamed {
    #[step(name = "fetch-page")]
    async fn fetch(&self, _ev: StartEvent) -> Result<StopEvent<()>, String> {
        Ok(StopEvent::new(()))
    }

    #[step(catch("fetch-page"), max_recoveries = 3)]
    async fn rescue(&self, _failed: StepFailed) -> StopEvent<()> {
        StopEvent::new(())
    }
}

fn main() {
    let _ = (Library, Mixed, Renamed);
}
