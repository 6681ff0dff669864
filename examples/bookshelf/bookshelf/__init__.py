"""Bookshelf: authors, their books and readers' reviews, over HTTP."""
